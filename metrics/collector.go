package metrics

import (
	"iter"
	"log/slog"
	"math"
	"runtime/debug"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/status"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descManaged = prometheus.NewDesc("certkeeper_certificates_managed",
		"Certificates the Manager keeps renewed, in memory or not (certkeeper_cache_certificates counts those in memory).", nil, nil)
	descFailing = prometheus.NewDesc("certkeeper_certificates_failing",
		"Names whose last renewal or first issuance failed (a failing first issuance has no certificate yet), as certkeeper status shows them.", nil, nil)
	descExpiry = prometheus.NewDesc("certkeeper_certificate_expiry_seconds",
		"Seconds until a certificate expires, by primary name and issuer (\"file\" for certificate files; only while at most NameLimit certificates are managed).",
		[]string{"name", "issuer"}, nil)
	descExpiryHist = prometheus.NewDesc("certkeeper_certificates_expiry_seconds",
		"Distribution of the seconds until each certificate kept renewed (certkeeper_certificates_managed) or certificate file expires.", nil, nil)
	descMinExpiry = prometheus.NewDesc("certkeeper_certificates_min_expiry_seconds",
		"Seconds until the soonest-expiring certificate kept renewed or certificate file expires (absent with none).", nil, nil)
	descExpiring = prometheus.NewDesc("certkeeper_certificates_expiring",
		"Certificates kept renewed, or served from certificate files, with less than a tenth of their lifetime left, whatever that lifetime, or already expired: renewal starts at a third, so renewals have failed for a long while (status's expiring and expired; status calls a certificate file expiring from a third on).", nil, nil)
	descExpired = prometheus.NewDesc("certkeeper_certificates_expired",
		"Certificates kept renewed, or served from certificate files, past their expiry, served while renewals fail if in memory (status's expired); counted in certkeeper_certificates_expiring too.", nil, nil)
	descFailingFor = prometheus.NewDesc("certkeeper_renewal_failing_seconds",
		"How long the longest-failing renewal has been failing, in seconds (0 when none fails; first issuances do not count).", nil, nil)
	descFirstIssues = prometheus.NewDesc("certkeeper_first_issuances_failing",
		"Names with no certificate yet whose first issuance failed (a managed name is tried again on a schedule, any other at a handshake); part of certkeeper_certificates_failing.", nil, nil)
	descHandshakes = prometheus.NewDesc("certkeeper_handshakes_total",
		"Handshakes served, by where the certificate came from: memory, storage or issuance (a storage load or issuance shared by concurrent handshakes counts once).",
		[]string{"source"}, nil)
	descCached = prometheus.NewDesc("certkeeper_cache_certificates",
		"Certificates held in memory.", nil, nil)
	descDamaged = prometheus.NewDesc("certkeeper_certificates_damaged",
		"Stored certificate records this process found damaged and does not renew (certkeeper status lists them with the reason), until replaced or deleted.", nil, nil)
)

// expiryBuckets are the upper bounds of the expiry histogram: an hour, six
// hours, a day, three days, a week, two weeks, 30, 60 and 90 days.
var expiryBuckets = []float64{3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400}

// managerCollector reads a Manager's Stats at scrape time.
type managerCollector struct {
	x *Metrics
	m *certkeeper.Manager
}

// Describe sends the descriptors of the metrics the collector makes.
func (c *managerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descManaged, descFailing, descExpiry, descExpiryHist, descMinExpiry, descExpiring, descExpired,
		descFailingFor, descFirstIssues, descHandshakes, descCached, descDamaged} {
		ch <- d
	}
}

// Collect reads the Manager's counters and certificates. A panic in it is
// logged and ends this scrape's Manager metrics only: the registry
// collects in goroutines of its own, where a panic would end the process.
func (c *managerCollector) Collect(ch chan<- prometheus.Metric) {
	defer func() {
		if r := recover(); r != nil {
			log := c.m.Logger
			if log == nil {
				log = slog.Default()
			}
			log.Error("certkeeper bug: a panic stopped collecting the Manager's metrics for this scrape",
				slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
		}
	}()
	s := c.m.Stats()
	now := time.Now()
	refused := countRefused(s.Certificates)
	ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(s.HandshakesMemory), "memory")
	ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(s.HandshakesStorage), "storage")
	ch <- prometheus.MustNewConstMetric(descHandshakes, prometheus.CounterValue, float64(s.HandshakesIssued), "issuance")
	ch <- prometheus.MustNewConstMetric(descCached, prometheus.GaugeValue, float64(s.Cached))
	ch <- prometheus.MustNewConstMetric(descManaged, prometheus.GaugeValue, float64(len(s.Certificates)-refused))
	ch <- prometheus.MustNewConstMetric(descDamaged, prometheus.GaugeValue, float64(s.Damaged))

	limit := c.x.NameLimit
	if limit == 0 {
		limit = DefaultNameLimit
	}
	// Certificates served from files (issuer "file") count in the expiry
	// metrics as those certkeeper renews, expiring as status says a
	// certificate nobody but its owner renews is.
	// Both lists are walked in turn, not joined: with certificate files
	// served, joining copied every certificate's stats (14 MB a scrape at
	// 100,000 certificates).
	total := len(s.Certificates) - refused + len(s.CertFiles)
	perName := total <= limit
	buckets := make(map[float64]uint64, len(expiryBuckets))
	var sum float64
	minLeft := math.Inf(1)
	failing := map[string]bool{}  // primary names, as status shows them
	renewing := map[string]bool{} // the same, less first issuances
	firstIssues, expiring, expired := 0, 0, 0
	for cert := range joined(s.Certificates, s.CertFiles) {
		if cert.Refused {
			continue
		}
		left := cert.NotAfter.Sub(now).Seconds()
		if perName && len(cert.Names) > 0 {
			ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, left, cert.Names[0], cert.Issuer)
		}
		for _, b := range expiryBuckets {
			if left <= b {
				buckets[b]++
			}
		}
		sum += left
		minLeft = math.Min(minLeft, left)
		switch {
		case left <= 0: // an expiring gauge that fell to 0 at the expiry would end its alert then
			expiring++
			expired++
		case status.IsExpiring(cert.NotBefore, cert.NotAfter, now, true):
			// Certificate files too by the tenth: the rules on this gauge
			// page (status calls a file expiring from a third on, a
			// warning for its owner, TestFileExpiringIsNotAPage).
			expiring++
		}
		if cert.Failures > 0 && len(cert.Names) > 0 {
			failing[cert.Names[0]] = true
			renewing[cert.Names[0]] = true
		}
	}
	// The failures kept for status: failing renewals and names whose
	// first issuance fails (they have no certificate to count above).
	// Only renewals count for how long renewals have failed: a name
	// that never got a certificate, asked for once, must not keep the
	// renewal alert firing.
	for _, f := range s.Failures {
		if len(f.Names) == 0 {
			continue
		}
		failing[f.Names[0]] = true
		if f.FirstIssue {
			firstIssues++
			continue
		}
		renewing[f.Names[0]] = true
		c.x.noteFailing(f.Names[0], f.FailingSince())
	}
	ch <- prometheus.MustNewConstHistogram(descExpiryHist, uint64(total), sum, buckets)
	if total > 0 {
		ch <- prometheus.MustNewConstMetric(descMinExpiry, prometheus.GaugeValue, minLeft)
	}
	ch <- prometheus.MustNewConstMetric(descExpiring, prometheus.GaugeValue, float64(expiring))
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.GaugeValue, float64(expired))
	ch <- prometheus.MustNewConstMetric(descFailing, prometheus.GaugeValue, float64(len(failing)))
	ch <- prometheus.MustNewConstMetric(descFirstIssues, prometheus.GaugeValue, float64(firstIssues))
	ch <- prometheus.MustNewConstMetric(descFailingFor, prometheus.GaugeValue, c.x.failingFor(renewing, now).Seconds())
}

// countRefused counts the certificates the policy no longer allows
// (CertStats.Refused): left to expire, they are not counted among those
// kept renewed, nor as expiring (a soak trial's name taken out of the
// allowlist fired the expiry alerts, and --nagios's CRITICAL, as it ran
// out).
func countRefused(certs []certkeeper.CertStats) int {
	n := 0
	for _, c := range certs {
		if c.Refused {
			n++
		}
	}
	return n
}

// joined yields the elements of a, then those of b, without copying them.
func joined(a, b []certkeeper.CertStats) iter.Seq[certkeeper.CertStats] {
	return func(yield func(certkeeper.CertStats) bool) {
		for _, l := range [2][]certkeeper.CertStats{a, b} {
			for _, c := range l {
				if !yield(c) {
					return
				}
			}
		}
	}
}
