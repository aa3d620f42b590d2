package metrics

import (
	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descDeployFailures = prometheus.NewDesc("certkeeper_deploy_failures_total",
		"Deployments of certificates to other servers' files (deploy_format) that failed: the check rejected the files, or the reload failed (each is retried with backoff).",
		nil, nil)
	descDeployFailing = prometheus.NewDesc("certkeeper_deploy_failing",
		"1 while the last deployment of certificates to other servers' files failed (a check that refused new files keeps the ones deployed before; a reload that failed is run again), else 0.",
		nil, nil)
)

// deployCollector reads a Deployer's counts at scrape time.
type deployCollector struct{ d *certdeploy.Deployer }

// Describe sends the descriptors of the metrics the collector makes.
func (c deployCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDeployFailures
	ch <- descDeployFailing
}

// Collect reads the Deployer's counts.
func (c deployCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Stats()
	failing := 0.0
	if s.Failing {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(descDeployFailures, prometheus.CounterValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(descDeployFailing, prometheus.GaugeValue, failing)
}

// RegisterDeploy adds certkeeper_deploy_failures_total and
// certkeeper_deploy_failing, read from d's counts (certdeploy.Deployer.Stats)
// when Prometheus scrapes. Register one Deployer per Metrics.
func (x *Metrics) RegisterDeploy(d *certdeploy.Deployer) error {
	return x.reg.Register(deployCollector{d})
}
