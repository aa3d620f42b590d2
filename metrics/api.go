package metrics

import (
	"net/http"
	"strconv"

	"github.com/certkeeper/certkeeper/certserver"
	"github.com/prometheus/client_golang/prometheus"
)

var descAPIRequests = prometheus.NewDesc("certkeeper_api_requests_total",
	"Requests the certificate server's API answered, by endpoint (certificates, ocsp, metrics, healthz, acme-challenge, other) and HTTP status code.",
	[]string{"endpoint", "code"}, nil)

// apiCollector reads a certificate server's request counts at scrape time.
type apiCollector struct{ h *certserver.Handler }

// Describe sends the descriptor of the metric the collector makes.
func (c apiCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descAPIRequests }

// Collect reads the handler's counts.
func (c apiCollector) Collect(ch chan<- prometheus.Metric) {
	for _, rc := range c.h.Requests() {
		ch <- prometheus.MustNewConstMetric(descAPIRequests, prometheus.CounterValue, float64(rc.N), rc.Endpoint, strconv.Itoa(rc.Code))
	}
}

// RegisterAPI adds certkeeper_api_requests_total, read from h's request
// counts (certserver.Handler.Requests) when Prometheus scrapes: the
// requests a certificate server answered, by endpoint and status code
// (keys handed out are endpoint="certificates", code="200"; refused
// tokens code="401"). Register one Handler per Metrics.
func (x *Metrics) RegisterAPI(h *certserver.Handler) error {
	return x.reg.Register(apiCollector{h})
}

// ServerHandler returns a handler serving the metrics of a certificate
// server: Handler(h.Manager) and RegisterAPI(h) in one call, for
// certkeeper server's API listener (its Handler.Metrics). h.Manager must
// be set.
func ServerHandler(h *certserver.Handler) http.Handler {
	x := New()
	_ = x.Register(h.Manager) // a fresh registry: cannot collide
	_ = x.RegisterAPI(h)
	x.Watch(h.Manager)
	return x.Handler()
}
