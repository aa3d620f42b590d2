package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/proxy"
)

// TestTrafficAndAccessLog: a Handler with Traffic and an AccessLog counts
// each request by status class and duration, its backend failures by
// kind, and logs one line per request with what an operator asks of an
// access log (who, what, how it went); the query is not logged, and an
// upgraded connection is logged when it ends, with 101. A trial found the
// proxy blind to its own traffic.
func TestTrafficAndAccessLog(t *testing.T) {
	hang := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ws":
			wsEcho(w, r)
		case "/slow":
			<-hang
		case "/missing":
			http.NotFound(w, r)
		default:
			io.WriteString(w, "hello")
		}
	}))
	t.Cleanup(backend.Close)
	t.Cleanup(func() { close(hang) })
	tr := proxy.NewTransport()
	tr.ResponseHeaderTimeout = 300 * time.Millisecond
	logger, logs := newLogger()
	traffic := new(proxy.Traffic)
	h := &proxy.Handler{
		Router:    mustRouter(t, proxy.RouterConfig{Default: backend.URL, Routes: []proxy.Route{{Pattern: "down.b.test", Backend: "http://" + freeAddr(t)}}}),
		Transport: tr, Logger: logger, AccessLog: logger, Traffic: traffic,
	}
	p := startProxy(t, "127.0.0.1", h, logger)
	c := p.client(t, true)
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"https://a.test/ok?token=secret", 200},
		{"https://a.test/missing", 404},
		{"https://a.test/slow", 504},
		{"https://down.b.test/x", 502},
	} {
		resp, err := c.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.url, resp.StatusCode, tc.want)
		}
	}
	conn, br := wsDial(t, p)
	io.WriteString(conn, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("WebSocket echo: %q, %v", buf, err)
	}
	conn.Close()

	var got proxy.TrafficCounts
	for deadline := time.Now().Add(testTimeout); ; time.Sleep(10 * time.Millisecond) {
		if got = traffic.Counts(); got.Classes["1xx"] == 1 || time.Now().After(deadline) {
			break
		}
	}
	want := map[string]uint64{"1xx": 1, "2xx": 1, "3xx": 0, "4xx": 1, "5xx": 2, "other": 0}
	for class, n := range want {
		if got.Classes[class] != n {
			t.Errorf("requests %s: %d, want %d (all: %v)", class, got.Classes[class], n, got.Classes)
		}
	}
	var timed uint64
	for _, n := range got.Durations {
		timed += n
	}
	if timed != 5 || got.Seconds < 0.3 {
		t.Errorf("durations: %d requests timed, %.3f s in all; want 5, and at least the 0.3 s of the slow one", timed, got.Seconds)
	}
	for kind, n := range map[string]uint64{proxy.FailureUnreachable: 1, proxy.FailureTimeout: 1, proxy.FailureStopping: 0} {
		if got.Failures[kind] != n {
			t.Errorf("backend failures %s: %d, want %d", kind, got.Failures[kind], n)
		}
	}

	out := logs.String()
	for _, line := range []string{
		`msg=request name=a.test remote_ip=127.0.0.1 method=GET path=/ok proto=HTTP/2.0 status=200 bytes=5 duration=`,
		`path=/missing proto=HTTP/2.0 status=404`,
		`path=/slow proto=HTTP/2.0 status=504`,
		`name=down.b.test remote_ip=127.0.0.1 method=GET path=/x proto=HTTP/2.0 status=502`,
		`path=/ws proto=HTTP/1.1 status=101`,
		`backend=` + backend.URL,
		`user_agent=Go-http-client/2.0`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("the access log lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("the access log holds the query:\n%s", out)
	}
}
