package cli

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches url and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s with the Prometheus text parser: %v", url, err)
	}
	return fams
}

// metricValue returns the value of the family's sample whose labels
// include want, and whether there is one.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestProxyMetrics: after the proxy obtains a certificate from Pebble and
// serves handshakes, /metrics on --metrics-addr parses with the Prometheus
// text parser and carries every metric docs/metrics.md lists.
func TestProxyMetrics(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	roots := writeRoots(t, ca)
	back := newBackend(t, "hello")
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	startProxy(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(ca.TLSPort()), "--backend", back.url,
		"--allow", "a.test", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--storage", t.TempDir(), "--metrics-addr", metricsAddr)
	for range 3 {
		if body, _ := curl(t, roots, "a.test", ca.TLSPort()); body != "hello" {
			t.Fatalf("body through the proxy = %q", body)
		}
	}
	// A name outside --allow is denied by the policy.
	_, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(ca.TLSPort()),
		&tls.Config{ServerName: "evil.test", InsecureSkipVerify: true})
	if err == nil {
		t.Fatal("handshake for a name outside --allow succeeded")
	}

	fams := scrape(t, "http://"+metricsAddr+"/metrics")
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"certkeeper_certificates_managed", nil, 1},
		{"certkeeper_certificate_expiry_seconds", map[string]string{"name": "a.test"}, 3600},
		{"certkeeper_certificates_expiry_seconds", nil, 1},
		{"certkeeper_certificates_min_expiry_seconds", nil, 3600},
		{"certkeeper_issuance_attempts_total", map[string]string{"operation": "issue", "result": "success"}, 1},
		{"certkeeper_issuance_duration_seconds", map[string]string{"operation": "issue", "result": "success"}, 1},
		{"certkeeper_handshakes_total", map[string]string{"source": "issuance"}, 1},
		{"certkeeper_handshakes_total", map[string]string{"source": "memory"}, 2},
		{"certkeeper_denied_names_total", map[string]string{"reason": "policy"}, 1},
		{"certkeeper_cache_certificates", nil, 1},
		{"certkeeper_storage_operation_duration_seconds", map[string]string{"op": "store", "result": "ok"}, 1},
		{"certkeeper_storage_operation_duration_seconds", map[string]string{"op": "lock", "result": "ok"}, 1},
		{"certkeeper_renewal_failing_seconds", nil, 0},
		{"certkeeper_certificates_failing", nil, 0},
		{"certkeeper_renewal_failures_total", nil, 0},
		{"certkeeper_events_total", map[string]string{"kind": "obtained"}, 1},
	}
	for _, c := range checks {
		v, ok := metricValue(fams, c.name, c.labels)
		if !ok {
			t.Errorf("/metrics has no %s%v", c.name, c.labels)
			continue
		}
		if v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}
}

// TestServerMetrics: the server's --metrics-addr carries the storage
// timing series too (its API handler used to start the Manager before the
// timed storage was put in, so a server-only fleet could not alert on
// storage errors; trial 11), and both its metrics (--metrics-addr and the
// API's /metrics) count the API's requests by endpoint and status code,
// which they did not (trial 20: keys handed out and refused tokens were
// in the audit log only).
func TestServerMetrics(t *testing.T) {
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	startListening(t, "server listening", "server", "--listen", listen, "--no-auth", "--ca", "local", "--allow", "localhost",
		"--storage", t.TempDir(), "--metrics-addr", metricsAddr)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get("http://" + listen + "/v1/certificates/localhost")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/certificates/localhost: %s", resp.Status)
	}
	resp, err = (&http.Client{Timeout: 30 * time.Second}).Get("http://" + listen + "/v1/certificates/not-allowed.test")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("GET /v1/certificates/not-allowed.test: %s, want 403", resp.Status)
	}
	fams := scrape(t, "http://"+metricsAddr+"/metrics")
	for _, op := range []string{"store", "lock"} {
		if v, ok := metricValue(fams, "certkeeper_storage_operation_duration_seconds", map[string]string{"op": op, "result": "ok"}); !ok || v < 1 {
			t.Errorf("the server's /metrics has no successful storage %s (%v, %v)", op, v, ok)
		}
	}
	for _, where := range []string{metricsAddr, listen} {
		fams := scrape(t, "http://"+where+"/metrics")
		for _, code := range []string{"200", "403"} {
			labels := map[string]string{"endpoint": "certificates", "code": code}
			if v, ok := metricValue(fams, "certkeeper_api_requests_total", labels); !ok || v != 1 {
				t.Errorf("http://%s/metrics: certkeeper_api_requests_total%v = %v (%v), want 1", where, labels, v, ok)
			}
		}
	}
}

// TestProxyCacheSize: --cache-size bounds the certificates the proxy
// holds in memory, whatever the number of names it serves (a cluster
// trial found no flag for it); a negative one is refused.
func TestProxyCacheSize(t *testing.T) {
	if r := ck(t, 30*time.Second, "proxy", "--check-config", "--cache-size", "-1"); r.code != 1 || !strings.Contains(r.stderr, "--cache-size -1: must be at least 1") {
		t.Errorf("--check-config --cache-size -1: exit %d, stderr %q; want 1 and the flag named", r.code, r.stderr)
	}
	back := newBackend(t, "hello")
	port, metricsAddr := testsvc.FreePort(t), "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t))
	startProxy(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--backend", back.url, "--allow", "*.cache.test", "--ca", "local",
		"--storage", t.TempDir(), "--metrics-addr", metricsAddr, "--cache-size", "2")
	for i := range 5 {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{ServerName: "n" + strconv.Itoa(i) + ".cache.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	if got, ok := metricValue(scrape(t, "http://"+metricsAddr+"/metrics"), "certkeeper_cache_certificates", nil); !ok || got < 1 || got > 2 {
		t.Errorf("certkeeper_cache_certificates after 5 names with --cache-size 2 = %v (%v), want 1 or 2", got, ok)
	}
}
