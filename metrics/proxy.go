package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/certkeeper/certkeeper/proxy"
)

var (
	descProxyRequests = prometheus.NewDesc("certkeeper_proxy_requests_total",
		"Requests the proxy answered, by class of status code (1xx for an upgrade such as a WebSocket, 2xx, 3xx, 4xx, 5xx, other).",
		[]string{"code"}, nil)
	descProxyDuration = prometheus.NewDesc("certkeeper_proxy_request_duration_seconds",
		"How long the proxy's requests took, from their header to the end of the response (streams and WebSockets included, in the last bucket).",
		nil, nil)
	descBackendFailures = prometheus.NewDesc("certkeeper_proxy_backend_failures_total",
		"Requests the proxy answered with an error page for their backend, by reason: unreachable (502), timeout (no answer within --backend-timeout: 504), stopping (still waiting when the proxy's drain ended: 503).",
		[]string{"reason"}, nil)
)

// RegisterTraffic adds certkeeper_proxy_requests_total,
// certkeeper_proxy_request_duration_seconds and
// certkeeper_proxy_backend_failures_total, read from t (the Traffic of the
// proxy's Handlers) when Prometheus scrapes. Their series are there at 0
// from the start. Register one Traffic per Metrics.
func (x *Metrics) RegisterTraffic(t *proxy.Traffic) error {
	return x.reg.Register(trafficCollector{t})
}

// trafficCollector reads a proxy's request counts at scrape time.
type trafficCollector struct{ t *proxy.Traffic }

// Describe sends the descriptors of the metrics the collector makes.
func (trafficCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descProxyRequests
	ch <- descProxyDuration
	ch <- descBackendFailures
}

// Collect reads the counts.
func (c trafficCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.t.Counts()
	for code, n := range counts.Classes {
		ch <- prometheus.MustNewConstMetric(descProxyRequests, prometheus.CounterValue, float64(n), code)
	}
	buckets := make(map[float64]uint64, len(proxy.DurationBuckets))
	var below uint64
	for i, bound := range proxy.DurationBuckets {
		below += counts.Durations[i]
		buckets[bound] = below // Prometheus buckets are cumulative
	}
	total := below + counts.Durations[len(proxy.DurationBuckets)] // the unbounded bucket's too
	ch <- prometheus.MustNewConstHistogram(descProxyDuration, total, counts.Seconds, buckets)
	for reason, n := range counts.Failures {
		ch <- prometheus.MustNewConstMetric(descBackendFailures, prometheus.CounterValue, float64(n), reason)
	}
}
