package metrics

import (
	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descConnsRefused = prometheus.NewDesc("certkeeper_connections_refused_total",
		"Connections closed at accept over a connection limit, by listener (its address) and reason (max_conns: the listener's max_conns; per_client: max_conns_per_client of one client address).",
		[]string{"listener", "reason"}, nil)
	descRequestsRefused = prometheus.NewDesc("certkeeper_requests_refused_total",
		"Requests answered 503 over the proxy's limits of requests in progress, by listener (its address) and reason (max_conns, per_client).",
		[]string{"listener", "reason"}, nil)
)

// RegisterRefusals adds certkeeper_connections_refused_total and
// certkeeper_requests_refused_total, read from r (the Refusals in the
// Limits of the front-end's listeners; monitor.Monitor.Refusals) when
// Prometheus scrapes: the connections and requests closed or answered 503
// over max_conns and max_conns_per_client. Register one Refusals per
// Metrics.
func (x *Metrics) RegisterRefusals(r *connlimit.Refusals) error {
	return x.reg.Register(refusalCollector{r})
}

// refusalCollector reads a front-end's connection-limit refusals at
// scrape time.
type refusalCollector struct{ r *connlimit.Refusals }

// Describe sends the descriptors of the metrics the collector makes.
func (refusalCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnsRefused
	ch <- descRequestsRefused
}

// Collect reads the refusal counts.
func (c refusalCollector) Collect(ch chan<- prometheus.Metric) {
	for k, n := range c.r.Counts() {
		desc, reason := descConnsRefused, "max_conns"
		if k.Requests {
			desc = descRequestsRefused
		}
		if k.PerClient {
			reason = "per_client"
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(n), k.Listener, reason)
	}
}
