// Package metrics exports a certkeeper Manager's state as Prometheus
// metrics.
//
// Nothing here runs on a handshake. The Manager keeps a few atomic
// counters that a collector reads at scrape time (Manager.Stats); the rest
// is fed by the Manager's events (issuance, renewal, denial), which happen
// on the slow paths only, and by a Storage wrapper that times each storage
// operation. docs/metrics.md lists every metric with alert rules.
//
//	x := metrics.New()
//	m := &certkeeper.Manager{Storage: x.Storage(filestore.New(dir)), OnEvent: x.Observe}
//	x.Register(m)
//	http.Handle("/metrics", x.Handler())
//
// Handler(m) does all of this for a Manager that already exists, except
// the storage timing.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/limit"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/policy"
)

// DefaultNameLimit is how many certificates get a per-name expiry gauge
// when Metrics.NameLimit is zero. Beyond it only the histogram and the
// minimum are exported, so a Manager with a million on-demand names does
// not export a million series.
const DefaultNameLimit = 100

// Metrics collects one or more Managers' metrics into its own registry.
// Create it with New.
type Metrics struct {
	// NameLimit is the number of certificates up to which expiry is
	// exported per name. Zero means DefaultNameLimit; negative means never.
	NameLimit int

	reg *prometheus.Registry

	attempts        *prometheus.CounterVec
	latency         *prometheus.HistogramVec
	renewalFailures prometheus.Counter
	acmeErrors      *prometheus.CounterVec
	denied          *prometheus.CounterVec
	events          *prometheus.CounterVec
	storageOps      *prometheus.HistogramVec

	mu           sync.Mutex           // guards failingSince
	failingSince map[string]time.Time // primary name → first failed renewal in a row
}

// New returns a Metrics with its own registry, holding the event-fed
// metrics, storage timing and Go runtime and process collectors.
func New() *Metrics {
	x := &Metrics{
		reg:          prometheus.NewRegistry(),
		failingSince: map[string]time.Time{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certkeeper_issuance_attempts_total",
			Help: "Issuance attempts, one per issuer tried, by operation (issue, renewal), issuer and result (success, failure).",
		}, []string{"operation", "issuer", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certkeeper_issuance_duration_seconds",
			Help:    "Time to obtain a certificate from an issuer, by operation and result.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"operation", "result"}),
		renewalFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certkeeper_renewal_failures_total",
			Help: "Renewals that failed with every issuer of the chain (each is retried with backoff).",
		}),
		acmeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certkeeper_acme_errors_total",
			Help: "Errors from issuers by type: the ACME problem type (rateLimited, unauthorized, ...), network, timeout or other.",
		}, []string{"type"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certkeeper_denied_names_total",
			Help: "Handshakes for names refused a certificate, by reason (policy, no_policy, rate_limited, order_limit: the operator's limit on new orders, client_limit, failed_recently: the name's back-off after a failed issuance, invalid_name, no_sni: a client without SNI and no default name, other).",
		}, []string{"reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certkeeper_events_total",
			Help: "Manager events by kind (obtained, renewed, renewal_failed, revoked, denied, loaded, issuer_failed).",
		}, []string{"kind"}),
		storageOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certkeeper_storage_operation_duration_seconds",
			Help:    "Latency of storage operations by operation (load, store, delete, list, lock) and result (ok, not_found, error).",
			Buckets: []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5},
		}, []string{"op", "result"}),
	}
	x.reg.MustRegister(x.attempts, x.latency, x.renewalFailures, x.acmeErrors, x.denied, x.events, x.storageOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return x
}

// Registry returns the registry the metrics are in, to add one's own or
// to gather them elsewhere.
func (x *Metrics) Registry() *prometheus.Registry { return x.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (x *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(x.reg, promhttp.HandlerOpts{})
}

// Register adds the collector that reads m's counters and certificates at
// scrape time. Register one Manager per Metrics.
func (x *Metrics) Register(m *certkeeper.Manager) error {
	return x.reg.Register(&managerCollector{x: x, m: m})
}

// Watch feeds x with m's events until m is closed or stop is called; use
// it when m's OnEvent is taken. Events a busy Metrics cannot take at once
// are dropped (Manager.Watch), never slowing the Manager down.
func (x *Metrics) Watch(m *certkeeper.Manager) (stop func()) {
	ch, stop := m.Watch()
	go func() {
		for e := range ch {
			x.Observe(e)
		}
	}()
	return stop
}

// Handler returns a handler serving m's metrics: New, Register and Watch
// in one call, for mounting on an existing server (certkeeper server's
// API listener). The watch ends when m is closed.
func Handler(m *certkeeper.Manager) http.Handler {
	x := New()
	_ = x.Register(m) // a fresh registry: cannot collide
	x.Watch(m)
	return x.Handler()
}

// Observe records one event; it is a Manager.OnEvent function.
func (x *Metrics) Observe(e certkeeper.Event) {
	x.events.WithLabelValues(e.Kind.String()).Inc()
	primary := ""
	if len(e.Names) > 0 {
		primary = e.Names[0]
	}
	switch e.Kind {
	case certkeeper.Obtained, certkeeper.Renewed:
		op := operation(e.Kind == certkeeper.Renewed)
		x.attempts.WithLabelValues(op, e.Issuer, "success").Inc()
		x.latency.WithLabelValues(op, "success").Observe(e.Duration.Seconds())
		x.mu.Lock()
		delete(x.failingSince, primary)
		x.mu.Unlock()
	case certkeeper.IssuerFailed:
		op := operation(e.Renewal)
		x.attempts.WithLabelValues(op, e.Issuer, "failure").Inc()
		x.latency.WithLabelValues(op, "failure").Observe(e.Duration.Seconds())
		x.acmeErrors.WithLabelValues(ErrorType(e.Err)).Inc()
	case certkeeper.RenewalFailed:
		x.renewalFailures.Inc()
		x.mu.Lock()
		if _, ok := x.failingSince[primary]; !ok {
			x.failingSince[primary] = e.Time
		}
		x.mu.Unlock()
	case certkeeper.Denied:
		x.denied.WithLabelValues(denyReason(e.Err)).Inc()
	}
}

func operation(renewal bool) string {
	if renewal {
		return "renewal"
	}
	return "issue"
}

// ErrorType classifies an issuer's error for certkeeper_acme_errors_total:
// the ACME problem type without its URN prefix ("rateLimited",
// "unauthorized", ...), else "timeout", "network" or "other".
func ErrorType(err error) string {
	var p acme.Problem
	if errors.As(err, &p) && p.Type != "" {
		return strings.TrimPrefix(p.Type, acme.ProblemTypeNamespace)
	}
	var pp *acme.Problem
	if errors.As(err, &pp) && pp != nil && pp.Type != "" {
		return strings.TrimPrefix(pp.Type, acme.ProblemTypeNamespace)
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case errors.As(err, &ne):
		return "network"
	}
	return "other"
}

// denyReason classifies a Denied event's error.
func denyReason(err error) string {
	switch {
	case errors.Is(err, certkeeper.ErrNoPolicy):
		return "no_policy"
	case errors.Is(err, certkeeper.ErrNoSNI):
		return "no_sni"
	case errors.Is(err, certkeeper.ErrClientLimit):
		return "client_limit"
	case errors.Is(err, certkeeper.ErrFailedRecently):
		return "failed_recently"
	case orderLimit(err):
		return "order_limit"
	case errors.Is(err, issuer.ErrRateLimited):
		return "rate_limited"
	case errors.Is(err, hostname.ErrInvalidName):
		return "invalid_name"
	case errors.Is(err, policy.ErrAskBusy):
		return "ask_busy"
	case errors.Is(err, policy.ErrDenied):
		return "policy"
	}
	return "other"
}

// orderLimit reports a refusal by the operator's own limit on new orders
// (--order-limit, Cluster.OrderLimit), not one that keeps within the CA's.
func orderLimit(err error) bool {
	rl, ok := errors.AsType[*limit.RateLimitError](err)
	return ok && rl.Configured
}

// noteFailing remembers since when name has failed, if not known yet
// (a failing first issuance reaches the collector without a
// RenewalFailed event).
func (x *Metrics) noteFailing(name string, since time.Time) {
	if since.IsZero() {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.failingSince[name]; !ok {
		x.failingSince[name] = since
	}
}

// failingFor returns how long the longest-failing of the given primary
// names has failed to renew, forgetting names no longer failing.
func (x *Metrics) failingFor(failing map[string]bool, now time.Time) time.Duration {
	x.mu.Lock()
	defer x.mu.Unlock()
	var longest time.Duration
	for name, since := range x.failingSince {
		if !failing[name] {
			delete(x.failingSince, name)
			continue
		}
		if d := now.Sub(since); d > longest {
			longest = d
		}
	}
	return longest
}
