package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
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
	return x.reg.Register(reloadCollector(status))
}

// reloadCollector reads the reload status at scrape time.
type reloadCollector func() (bool, time.Time)

// Describe sends the descriptors of the metrics the collector makes.
func (reloadCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descReloadOK
	ch <- descReloadAt
}

// Collect reads the reload status.
func (c reloadCollector) Collect(ch chan<- prometheus.Metric) {
	ok, at := c()
	v := 0.0
	if ok {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(descReloadOK, prometheus.GaugeValue, v)
	ch <- prometheus.MustNewConstMetric(descReloadAt, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
}
