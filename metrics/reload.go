package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descStorageHealthy = prometheus.NewDesc("certkeeper_storage_healthy",
		"1 while the storage answers the health check (/healthz), 0 while it fails (full, read-only, down): nothing new is stored, issued or renewed meanwhile.",
		nil, nil)
	descUnstored = prometheus.NewDesc("certkeeper_certificates_unstored",
		"Certificates issued that storage refused, served from memory and offered to it again every 30 s: a restart before then loses them.",
		nil, nil)
	descReloadOK = prometheus.NewDesc("certkeeper_config_last_reload_successful",
		"1 if the last reload of the configuration file (SIGHUP) succeeded, or none was asked; 0 after one that failed: the configuration read before still runs, not the file's.",
		nil, nil)
	descReloadAt = prometheus.NewDesc("certkeeper_config_last_reload_success_timestamp_seconds",
		"When the configuration that runs was read (Unix seconds): at the start, or at the last reload that succeeded.",
		nil, nil)
)

// RegisterReloads adds certkeeper_config_last_reload_successful and
// certkeeper_config_last_reload_success_timestamp_seconds, the names
// Prometheus itself exports for its reloads, read from status when
// Prometheus scrapes: whether the last reload succeeded (or none was
// asked), and when the configuration that runs was read. A reload that
// fails is otherwise only a log line: the signal that asked for it
// cannot fail (an ops trial).
func (x *Metrics) RegisterReloads(status func() (ok bool, readAt time.Time)) error {
	return x.reg.Register(flagGauges{descReloadOK, descReloadAt, func() (bool, float64) {
		ok, at := status()
		return ok, float64(at.UnixNano()) / 1e9
	}})
}

// RegisterHealth adds certkeeper_storage_healthy and
// certkeeper_certificates_unstored, read from health when Prometheus
// scrapes: whether the storage answers its health check (cached: at most
// one probe per check interval), and how many certificates issued are
// held in memory only (Manager.Unstored). An ops trial's full disk showed
// only in /healthz and the log.
func (x *Metrics) RegisterHealth(health func() (healthy bool, unstored int)) error {
	return x.reg.Register(flagGauges{descStorageHealthy, descUnstored, func() (bool, float64) {
		ok, n := health()
		return ok, float64(n)
	}})
}

// flagGauges reads two gauges at scrape time: flag, 1 or 0, and value.
type flagGauges struct {
	flag, value *prometheus.Desc
	read        func() (bool, float64)
}

// Describe sends the descriptors of the metrics the collector makes.
func (g flagGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.flag
	ch <- g.value
}

// Collect reads the two gauges.
func (g flagGauges) Collect(ch chan<- prometheus.Metric) {
	ok, v := g.read()
	flag := 0.0
	if ok {
		flag = 1
	}
	ch <- prometheus.MustNewConstMetric(g.flag, prometheus.GaugeValue, flag)
	ch <- prometheus.MustNewConstMetric(g.value, prometheus.GaugeValue, v)
}
