package cli

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestMetricsAddrNeedsToken: metrics name every managed host, so the
// proxy and the server refuse --metrics-addr beyond loopback without a
// token, naming --metrics-addr and --metrics-token, before they listen.
func TestMetricsAddrNeedsToken(t *testing.T) {
	for _, args := range [][]string{
		{"proxy", "--tls-addr", "127.0.0.1:0", "--metrics-addr", "0.0.0.0:0"},
		{"proxy", "--tls-addr", "127.0.0.1:0", "--metrics-addr", "[::]:0"},
		{"server", "--listen", "127.0.0.1:0", "--no-auth", "--metrics-addr", ":0"},
		{"server", "--listen", "127.0.0.1:0", "--no-auth", "--metrics-addr", "0.0.0.0:0", "--status-addr", "127.0.0.1:0", "--status-token", "status-token-0123456789"},
	} {
		r := ck(t, 10*time.Second, append(args, "--ca", "local", "--storage", t.TempDir())...)
		if r.code != 2 || !strings.Contains(r.stderr, "--metrics-addr") || !strings.Contains(r.stderr, "--metrics-token") ||
			strings.Contains(r.stderr, "listening") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 before listening, naming --metrics-addr and --metrics-token", args, r.code, r.stderr)
		}
	}
}

// TestMetricsToken: with --metrics-token, /metrics wants it as a bearer
// token (a Prometheus scrape config's authorization); sharing the status
// page's listener, metrics and status page both take --status-token.
// /healthz wants no token, on the server's metrics listener and on the
// proxy's shared one.
func TestMetricsToken(t *testing.T) {
	const metricsToken, statusToken = "metrics-token-0123456789", "status-token-0123456789"
	scrapeCode := func(url, token string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	metricsAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	startServer(t, "--ca", "local", "--storage", t.TempDir(), "--listen", "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)),
		"--token-file", writeTokens(t), "--metrics-addr", metricsAddr, "--metrics-token", metricsToken)
	for _, tt := range []struct {
		token string
		want  int
	}{{"", http.StatusUnauthorized}, {"wrong-token-0123456789", http.StatusUnauthorized}, {metricsToken, http.StatusOK}} {
		if code := scrapeCode("http://"+metricsAddr+"/metrics", tt.token); code != tt.want {
			t.Errorf("--metrics-token: /metrics with token %q = %d, want %d", tt.token, code, tt.want)
		}
	}
	if code := scrapeCode("http://"+metricsAddr+"/healthz", ""); code != http.StatusOK {
		t.Errorf("--metrics-token: /healthz without a token = %d, want 200", code)
	}

	shared := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	startProxy(t, "--tls-addr", "127.0.0.1:0", "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(),
		"--metrics-addr", shared, "--status-addr", shared, "--status-token", statusToken)
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/metrics", "", http.StatusUnauthorized},
		{"/metrics", statusToken, http.StatusOK},
		{"/status.json", "", http.StatusUnauthorized},
		{"/status.json", statusToken, http.StatusOK},
		{"/healthz", "", http.StatusOK},
	} {
		if code := scrapeCode("http://"+shared+tt.path, tt.token); code != tt.want {
			t.Errorf("shared listener: %s with token %q = %d, want %d", tt.path, tt.token, code, tt.want)
		}
	}
}

// TestOpsCheck: which ops listeners beyond loopback start: each needs its
// token, and metrics sharing the status page's listener take the status
// page's. (The binary tests above cannot listen beyond loopback.)
func TestOpsCheck(t *testing.T) {
	t.Setenv("CERTKEEPER_METRICS_TOKEN", "")
	t.Setenv("CERTKEEPER_STATUS_TOKEN", "")
	for _, tt := range []struct {
		name string
		cfg  opsConfig
		ok   bool
	}{
		{"metrics on loopback", opsConfig{MetricsAddr: "127.0.0.1:9100"}, true},
		{"metrics on localhost", opsConfig{MetricsAddr: "localhost:9100"}, true},
		{"metrics beyond loopback", opsConfig{MetricsAddr: ":9100"}, false},
		{"metrics beyond loopback with a token", opsConfig{MetricsAddr: ":9100", MetricsToken: "metrics-0123456789"}, true},
		{"metrics beside a status token, own listener", opsConfig{MetricsAddr: ":9100", StatusAddr: ":9101", StatusToken: "status-0123456789"}, false},
		{"metrics sharing the status listener", opsConfig{MetricsAddr: ":9100", StatusAddr: ":9100", StatusToken: "status-0123456789"}, true},
		{"shared listener without a token", opsConfig{MetricsAddr: ":9100", StatusAddr: ":9100"}, false},
		{"status beyond loopback", opsConfig{StatusAddr: "0.0.0.0:9101"}, false},
	} {
		err := tt.cfg.check()
		if (err == nil) != tt.ok {
			t.Errorf("%s: check() = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	// The token may come from the environment, as every flag may.
	t.Setenv("CERTKEEPER_METRICS_TOKEN", "from-env-0123456789")
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--allow", "a.test", "--ca", "local", "--backend", "127.0.0.1:8080",
		"--storage", t.TempDir(), "--metrics-addr", ":9100")
	if r.code != 0 {
		t.Errorf("metrics beyond loopback with $CERTKEEPER_METRICS_TOKEN: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
