package monitor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9100": true, "[::1]:9100": true, "localhost:9100": true, "LocalHost:1": true,
		":9100": false, "0.0.0.0:9100": false, "192.0.2.1:9100": false, "a.example:9100": false, "127.0.0.1": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		name     string
		cfg      Config
		listener string // "" when Check passes
	}{
		{"nothing", Config{}, ""},
		{"metrics on loopback", Config{MetricsAddr: "127.0.0.1:9100"}, ""},
		{"metrics beyond loopback", Config{MetricsAddr: ":9100"}, "metrics"},
		{"metrics with a token", Config{MetricsAddr: ":9100", MetricsToken: "metrics-0123456789"}, ""},
		{"status beyond loopback", Config{StatusAddr: "0.0.0.0:9101"}, "status"},
		{"status with a token", Config{StatusAddr: ":9101", StatusToken: "status-0123456789"}, ""},
		{"shared with the status token", Config{MetricsAddr: ":9100", StatusAddr: ":9100", StatusToken: "status-0123456789"}, ""},
		{"status token on another listener", Config{MetricsAddr: ":9100", StatusAddr: ":9101", StatusToken: "status-0123456789"}, "metrics"},
		{"a short token", Config{StatusAddr: ":9101", StatusToken: "s3cret"}, "short"},
	} {
		err := tt.cfg.Check()
		var exposed *ExposedError
		switch {
		case tt.listener == "" && err != nil:
			t.Errorf("%s: Check() = %v, want nil", tt.name, err)
		case tt.listener == "short" && (err == nil || !strings.Contains(err.Error(), "fewer than the 16 a token needs")):
			t.Errorf("%s: Check() = %v, want a refusal of the token", tt.name, err)
		case tt.listener != "" && tt.listener != "short" && (!errors.As(err, &exposed) || exposed.Listener != tt.listener):
			t.Errorf("%s: Check() = %v, want an *ExposedError for %s", tt.name, err, tt.listener)
		}
	}
}

func TestBearer(t *testing.T) {
	h := Bearer("s3cret", "test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	for _, tt := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong", 401}, {"Bearer s3cret", 200}, {"bearer s3cret", 200}, {"BEARER s3cret", 200},
		{"Basic s3cret", 401}, {"Bearers3cret", 401}, {"s3cret", 401}, {"Bearer ", 401}} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.code {
			t.Errorf("Authorization %q: %d, want %d", tt.auth, w.Code, tt.code)
		}
		if tt.code == 401 && w.Header().Get("WWW-Authenticate") != `Bearer realm="test"` {
			t.Errorf("Authorization %q: WWW-Authenticate %q", tt.auth, w.Header().Get("WWW-Authenticate"))
		}
	}
}

// TestStartShared serves metrics and the status page on one real
// loopback listener, each behind its token, and closes it; the metrics
// count that listener's refused connections.
func TestStartShared(t *testing.T) {
	const mtok, stok = "metrics-0123456789", "status-0123456789"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var names []string
	mon := New(Config{MetricsAddr: addr, StatusAddr: addr, MetricsToken: mtok, StatusToken: stok,
		Listen: func(name, _ string) (net.Listener, error) { names = append(names, name); return ln, nil }})
	st := filestore.New(t.TempDir())
	// The Manager's first storage scan (started by its first use) runs
	// beside the scrape below; Manager.Stats races with the scan's start
	// (a root-package bug, reported), so the test starts it and waits for
	// it to end first.
	scanned := make(chan struct{})
	m := &certkeeper.Manager{Storage: mon.Storage(st), OnEvent: mon.Observe,
		Logger: slog.New(&signalHandler{msg: "renewal schedule rebuilt from storage", ch: scanned})}
	defer m.Close()
	if err := mon.Start(m, st); err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	defer mon.Follow(t.Context(), &certdeploy.Deployer{Format: certdeploy.PEM, Dir: t.TempDir()}, m, st)()
	_ = m.HTTPHandler(nil) // the Manager's first use: its scan starts
	select {
	case <-scanned:
	case <-time.After(10 * time.Second):
		t.Fatal("the Manager's storage scan did not end in 10 s")
	}
	if len(names) != 1 || names[0] != "metrics" {
		t.Errorf("listeners opened: %q, want one, metrics", names)
	}
	get := func(path, token string) (int, string) {
		t.Helper()
		return request(t, "GET", "http://"+addr+path, "", token)
	}
	if code, body := get("/metrics", mtok); code != 200 || !strings.Contains(body, "certkeeper_") {
		t.Errorf("/metrics with its token: %d %.80q", code, body)
	} else if !strings.Contains(body, "\ncertkeeper_deploy_failing 0\n") {
		t.Error("/metrics lacks the followed deployment's certkeeper_deploy_failing")
	} else if own := `certkeeper_connections_refused_total{listener="` + addr + `",reason="per_client"} 0`; !strings.Contains(body, own) {
		t.Errorf("/metrics does not count the refusals of its own listener from its start (no %s)", own)
	}
	if code, _ := get("/metrics", stok); code != 401 {
		t.Errorf("/metrics with the status token: %d, want 401", code)
	}
	if code, body := get("/status.json", stok); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("/status.json with its token: %d %q", code, body)
	}
	mon.Close()
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("the listener still answers after Close")
	}
}

// signalHandler closes ch when a record with message msg is logged.
type signalHandler struct {
	msg  string
	ch   chan struct{}
	once sync.Once
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalHandler) WithGroup(string) slog.Handler            { return h }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.ch) })
	}
	return nil
}

// TestStartListenError: an address in use is a *ListenError naming it.
func TestStartListenError(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	mon := New(Config{StatusAddr: busy.Addr().String()})
	st := filestore.New(t.TempDir())
	err = mon.Start(&certkeeper.Manager{Storage: st}, st)
	var lerr *ListenError
	if !errors.As(err, &lerr) || lerr.Listener != "status" || lerr.Addr != busy.Addr().String() {
		t.Errorf("Start on a busy address = %v, want a *ListenError for status", err)
	}
	mon.Close()
}

// TestNoTokenLoopbackOnly: the status page and metrics without a token
// answer only requests for a loopback host (a web page's own name for
// 127.0.0.1 gets 421: DNS rebinding would read every managed name);
// with a token, any Host that carries it. A socket handed over (systemd's
// socket activation) bound beyond loopback is refused at Start, as Check
// refuses such an address.
func TestNoTokenLoopbackOnly(t *testing.T) {
	st := filestore.New(t.TempDir())
	start := func(cfg Config) *Monitor {
		t.Helper()
		mon := New(cfg)
		m := &certkeeper.Manager{Storage: mon.Storage(st), OnEvent: mon.Observe}
		t.Cleanup(func() { m.Close() })
		if err := mon.Start(m, st); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mon.Close)
		return mon
	}
	get := func(addr, host, path, token string) int {
		t.Helper()
		code, _ := request(t, "GET", "http://"+addr+path, host, token)
		return code
	}
	open := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	start(Config{MetricsAddr: open, StatusAddr: open})
	tokened := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	start(Config{MetricsAddr: tokened, StatusAddr: tokened, StatusToken: "0123456789abcdef-status"})
	for _, tt := range []struct {
		addr, host, path, token string
		want                    int
	}{
		{open, open, "/metrics", "", 200},
		{open, "localhost", "/status.json", "", 200},
		{open, "rebind.attacker.example", "/metrics", "", 421},
		{open, "rebind.attacker.example:1", "/status.json", "", 421},
		{tokened, "status.example", "/status.json", "0123456789abcdef-status", 200},
		{tokened, "status.example", "/metrics", "0123456789abcdef-status", 200},
		{tokened, tokened, "/status.json", "", 401},
	} {
		if got := get(tt.addr, tt.host, tt.path, tt.token); got != tt.want {
			t.Errorf("GET %s with Host %s (token %v): %d, want %d", tt.path, tt.host, tt.token != "", got, tt.want)
		}
	}

	// A socket bound to every address, as systemd may hand one over,
	// where the address given is loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wide := &boundTo{Listener: ln, addr: &net.TCPAddr{IP: net.IPv4zero, Port: ln.Addr().(*net.TCPAddr).Port}}
	mon := New(Config{StatusAddr: ln.Addr().String(), Listen: func(string, string) (net.Listener, error) { return wide, nil }})
	err = mon.Start(&certkeeper.Manager{Storage: st}, st)
	var exposed *ExposedError
	if !errors.As(err, &exposed) || exposed.Listener != "status" || !strings.Contains(exposed.Addr, "0.0.0.0") {
		t.Errorf("Start on a socket bound to 0.0.0.0 without a token = %v, want an *ExposedError naming it", err)
	}
	mon.Close()
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(time.Second))
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the refused socket was not closed: Accept = %v", err)
	}
}

// boundTo is a listener that says it is bound to addr: a socket handed
// over, bound wider than the address configured (the test itself listens
// on loopback only).
type boundTo struct {
	net.Listener
	addr net.Addr
}

func (l *boundTo) Addr() net.Addr { return l.addr }

// request sends method to url, with Host host and a bearer token when
// they are given, and returns the status code and the body.
func request(t *testing.T, method, url, host, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, nil)
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
