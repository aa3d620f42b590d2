package metrics_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/proxy"
)

// TestProxyTraffic: the requests a proxy Handler answers are on the
// metrics endpoint of the Metrics its Traffic is registered with: by
// status class, as a duration histogram, and its backend failures by
// reason, every series there at 0 from the start.
func TestProxyTraffic(t *testing.T) {
	traffic := new(proxy.Traffic)
	x := metrics.New()
	if err := x.RegisterTraffic(traffic); err != nil {
		t.Fatal(err)
	}
	scrape := httptest.NewServer(x.Handler())
	defer scrape.Close()
	before := scrapeText(t, scrape.URL)
	for _, want := range []string{`certkeeper_proxy_requests_total{code="2xx"} 0`, `certkeeper_proxy_request_duration_seconds_count 0`,
		`certkeeper_proxy_backend_failures_total{reason="unreachable"} 0`} {
		if !strings.Contains(before, want) {
			t.Errorf("before any request, the metrics lack %q:\n%s", want, before)
		}
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
	defer backend.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // nothing listens there now: unreachable
	router, err := proxy.NewRouter(proxy.RouterConfig{Default: backend.URL, Routes: []proxy.Route{{Pattern: "gone.test", Backend: gone.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(&proxy.Handler{Router: router, Logger: slog.New(slog.DiscardHandler), Traffic: traffic})
	defer front.Close()
	for _, host := range []string{"a.test", "a.test", "gone.test"} {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// A request is counted as its handler returns, which may be just after
	// the client has read the answer (a CI run scraped in between): the
	// counts are waited for.
	wantCount := `certkeeper_proxy_request_duration_seconds_count 3`
	after := scrapeText(t, scrape.URL)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(after, wantCount) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		after = scrapeText(t, scrape.URL)
	}
	for _, want := range []string{`certkeeper_proxy_requests_total{code="2xx"} 2`, `certkeeper_proxy_requests_total{code="5xx"} 1`,
		`certkeeper_proxy_request_duration_seconds_count 3`, `certkeeper_proxy_request_duration_seconds_bucket{le="+Inf"} 3`,
		`certkeeper_proxy_backend_failures_total{reason="unreachable"} 1`, `certkeeper_proxy_backend_failures_total{reason="timeout"} 0`} {
		if !strings.Contains(after, want) {
			t.Errorf("after three requests, the metrics lack %q:\n%s", want, after)
		}
	}
}

// scrapeText returns the body of a GET of url (a metrics endpoint).
func scrapeText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
