package proxy_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/proxy"
)

// TestForwardedHeaders checks what the backend sees through the proxy,
// over HTTP/2 and HTTP/1.1: the client's Host, its IP address in
// X-Forwarded-For and X-Real-IP (forged values replaced), https.
func TestForwardedHeaders(t *testing.T) {
	backend := startEcho(t, "default")
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)
	forged := http.Header{
		"X-Forwarded-For":   {"203.0.113.9"},
		"X-Forwarded-Proto": {"http"},
		"X-Forwarded-Host":  {"evil.test"},
		"X-Real-Ip":         {"203.0.113.9"},
		"Forwarded":         {"for=203.0.113.9"},
		// What a security trial found passed: underscore spellings, which
		// CGI-style backends merge with the dashed ones, and the other
		// headers backends take from a proxy.
		"X_Forwarded_For":    {"6.6.6.6"},
		"x_real_ip":          {"7.7.7.7"},
		"X-Forwarded-Port":   {"1"},
		"X-Forwarded-Prefix": {"/evil"},
		"True-Client-Ip":     {"6.6.6.6"},
		"X-Client-Ip":        {"6.6.6.6"},
		"X-Original-Url":     {"/admin"},
		"Forwarded-For":      {"6.6.6.6"},
		"X-Proxyuser-Ip":     {"6.6.6.6"},
		"X-Host":             {"evil.test"},
		"Front-End-Https":    {"off"},
		"X-Custom_Id":        {"kept"}, // an underscore header of no proxy's
	}
	for _, tt := range []struct {
		name       string
		h2         bool
		wantProto  int
		hdr        http.Header
		wantPassed string
	}{
		{"h2", true, 2, nil, ""},
		{"http1.1", false, 1, nil, ""},
		{"h2 forged", true, 2, forged, "X-Custom_id"},
		{"http1.1 forged", false, 1, forged, "X-Custom_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, proto := get(t, p.client(t, tt.h2), "https://a.test/x?y=1", tt.hdr)
			if proto != tt.wantProto {
				t.Errorf("response protocol HTTP/%d, want HTTP/%d", proto, tt.wantProto)
			}
			want := seen{
				Backend: "default",
				Host:    "a.test",
				Path:    "/x?y=1",
				XFF:     "127.0.0.1",
				XProto:  "https",
				XHost:   "a.test",
				XRealIP: "127.0.0.1",
				XPort:   "443", // the client's URL had no port: not the proxy's listener's (a port mapping's)
				Passed:  tt.wantPassed,
			}
			if got != want {
				t.Errorf("backend saw %+v, want %+v", got, want)
			}
		})
	}
}

// TestRoutes sends names to their own backends end to end, as
// --route b.test=URL does.
func TestRoutes(t *testing.T) {
	def, b, wild := startEcho(t, "default"), startEcho(t, "b"), startEcho(t, "wild")
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{
		Routes: []proxy.Route{
			{Pattern: "b.test", Backend: b.URL},
			{Pattern: "*.b.test", Backend: wild.URL + "/prefix"},
		},
		Default: def.URL,
	})}
	p := startProxy(t, "127.0.0.1", h, nil)
	c := p.client(t, true)
	for _, tt := range []struct{ host, wantBackend, wantPath string }{
		{"a.test", "default", "/x"},
		{"b.test", "b", "/x"},
		{"c.b.test", "wild", "/prefix/x"},
	} {
		got, _ := get(t, c, "https://"+tt.host+"/x", nil)
		if got.Backend != tt.wantBackend || got.Host != tt.host || got.Path != tt.wantPath {
			t.Errorf("GET https://%s/x reached %q with Host %q path %q; want %q, %q, %q",
				tt.host, got.Backend, got.Host, got.Path, tt.wantBackend, tt.host, tt.wantPath)
		}
	}
}

// TestMisdirected: a client connected for a.test (SNI, and the certificate
// for it) that sends "Host: b.test" does not reach b.test's route, which
// may be an internal site no certificate is served for: 421 Misdirected
// Request, over HTTP/2 and HTTP/1.1, and no request reaches a backend.
// A Host with the same backend as the server name is served (two names of
// one wildcard route, two names of the default backend), and so are the
// routed names over connections of their own.
func TestMisdirected(t *testing.T) {
	def, b, wild := startEcho(t, "default"), startEcho(t, "b"), startEcho(t, "wild")
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{
		Routes:  []proxy.Route{{Pattern: "b.test", Backend: b.URL}, {Pattern: "*.b.test", Backend: wild.URL}},
		Default: def.URL,
	})}
	p := startProxy(t, "127.0.0.1", h, nil)
	for _, h2 := range []bool{true, false} {
		c := p.client(t, h2)
		for _, tt := range []struct {
			sni, host string
			want      int
		}{
			{"a.test", "b.test", http.StatusMisdirectedRequest},
			{"a.test", "x.b.test", http.StatusMisdirectedRequest},
			{"b.test", "x.b.test", http.StatusMisdirectedRequest},
			{"b.test", "a.test", http.StatusMisdirectedRequest},
			{"x.b.test", "y.b.test", http.StatusOK},
			{"a.test", "c.test:443", http.StatusOK},
			{"b.test", "B.TEST.", http.StatusOK},
		} {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+tt.sni+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("GET https://%s/x with Host %s: %v", tt.sni, tt.host, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want || tt.want != http.StatusOK && strings.Contains(string(body), "Backend") {
				t.Errorf("HTTP/2 %v: SNI %s, Host %s: %s %q; want %d", h2, tt.sni, tt.host, resp.Status, body, tt.want)
			}
		}
	}
}

// TestSameLocalIP checks lets-proxy's rule end to end: with no default, a
// request goes to LocalPort on the address the client connected to. The
// backend's free port stands in for port 80.
func TestSameLocalIP(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
			if err != nil {
				if host == "::1" {
					t.Skipf("no IPv6 loopback: %v", err)
				}
				t.Fatal(err)
			}
			backend := httptest.NewUnstartedServer(echoHandler("local " + host))
			backend.Listener.Close()
			backend.Listener = ln
			backend.Start()
			t.Cleanup(backend.Close)
			port := ln.Addr().(*net.TCPAddr).Port

			h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{LocalPort: port})}
			p := startProxy(t, host, h, nil)
			got, _ := get(t, p.client(t, true), "https://a.test/x", nil)
			if got.Backend != "local "+host || got.XFF != host {
				t.Errorf("reached %q with X-Forwarded-For %q, want %q and %q", got.Backend, got.XFF, "local "+host, host)
			}
		})
	}
}

// TestWebSocket upgrades a connection through the proxy and echoes bytes,
// with a backend that implements the RFC 6455 handshake by hand.
func TestWebSocket(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(wsEcho))
	t.Cleanup(backend.Close)
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)

	conn, br := wsDial(t, p)
	msg := []byte("hello through the proxy")
	if _, err := conn.Write(msg); err != nil {
		t.Fatalf("writing to the upgraded connection: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(got) != string(msg) {
		t.Errorf("echo = %q, want %q", got, msg)
	}
}

// wsDial opens a TLS connection to p, sends a WebSocket upgrade request
// for a.test and checks the 101 answer.
func wsDial(t *testing.T, p *testProxy) (*tls.Conn, *bufio.Reader) {
	t.Helper()
	d := &net.Dialer{Timeout: testTimeout}
	conn, err := tls.DialWithDialer(d, "tcp", p.addr, &tls.Config{
		RootCAs:    p.pki.roots,
		ServerName: "a.test",
		NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatalf("dialing the proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testTimeout))

	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	_, err = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\n\r\n")
	if err != nil {
		t.Fatalf("writing the upgrade request: %v", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade response %s, want 101", resp.Status)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), wsAccept(key); got != want {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	if got := resp.Header.Get("Upgrade"); !strings.EqualFold(got, "websocket") {
		t.Fatalf("Upgrade = %q, want websocket", got)
	}
	return conn, br
}

// wsEcho answers a WebSocket upgrade (RFC 6455 §4.2.2) and echoes raw
// bytes until the client closes.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "want a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testTimeout))
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAccept(key) + "\r\n\r\n")
	if brw.Flush() != nil {
		return
	}
	io.Copy(conn, brw.Reader)
}

// TestStreaming checks that a chunk the backend flushes reaches the client
// while the backend is still writing.
func TestStreaming(t *testing.T) {
	for _, tt := range []struct {
		name        string
		contentType string
		h2          bool
	}{
		{"event-stream h2", "text/event-stream", true},
		{"chunked h2", "text/plain", true},
		{"chunked http1.1", "text/plain", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.contentType)
				io.WriteString(w, "first\n")
				http.NewResponseController(w).Flush()
				select {
				case <-release:
				case <-r.Context().Done():
				case <-time.After(testTimeout):
				}
				io.WriteString(w, "second\n")
			}))
			t.Cleanup(backend.Close)
			var once bool
			releaseOnce := func() {
				if !once {
					once = true
					close(release)
				}
			}
			defer releaseOnce()

			h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
			p := startProxy(t, "127.0.0.1", h, nil)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://a.test/events", nil)
			resp, err := p.client(t, tt.h2).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first := make(chan string, 1)
			go func() {
				line, _ := br.ReadString('\n')
				first <- line
			}()
			select {
			case line := <-first:
				if line != "first\n" {
					t.Fatalf("first chunk = %q, want %q", line, "first\n")
				}
			case <-time.After(testTimeout / 2):
				t.Fatal("the first chunk did not arrive while the backend was still writing")
			}
			releaseOnce()
			rest, err := io.ReadAll(br)
			if err != nil || string(rest) != "second\n" {
				t.Errorf("rest of the stream = %q, %v; want %q", rest, err, "second\n")
			}
		})
	}
}

// TestBackendDown checks the 502 page and the Warn log line.
func TestBackendDown(t *testing.T) {
	addr := freeAddr(t)
	logger, logs := newLogger()
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: "http://" + addr}), Logger: logger}
	p := startProxy(t, "127.0.0.1", h, logger)

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://a.test/x", nil)
	resp, err := p.client(t, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d, want 502", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	page := string(body)
	if !strings.Contains(page, "502 Bad Gateway") || !strings.Contains(page, "backend is unreachable") {
		t.Errorf("page %q does not say the backend is unreachable", page)
	}
	_, port, _ := net.SplitHostPort(addr)
	if strings.Contains(page, port) || strings.Contains(page, "127.0.0.1") || strings.Contains(page, "refused") {
		t.Errorf("page %q leaks backend details", page)
	}
	log := logs.String()
	for _, want := range []string{"level=WARN", `msg="backend unreachable"`, "name=a.test", "backend=http://" + addr, "remote_ip=127.0.0.1", "err="} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestBackendDownPaced: a backend that is down fails every request, and
// the Warn says so once a minute per backend (the rest at Debug), not once
// per request; another backend's failure is warned about on its own.
func TestBackendDownPaced(t *testing.T) {
	a, b := freeAddr(t), freeAddr(t)
	logger, logs := newLogger()
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: "http://" + a, Routes: []proxy.Route{{Pattern: "b.test", Backend: "http://" + b}}}), Logger: logger}
	p := startProxy(t, "127.0.0.1", h, logger)
	c := p.client(t, true)
	for _, host := range []string{"a.test", "a.test", "a.test", "b.test", "b.test"} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+host+"/", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: %d, want 502", host, resp.StatusCode)
		}
	}
	if n := strings.Count(logs.String(), `level=WARN msg="backend unreachable"`); n != 2 {
		t.Errorf("%d Warn lines for 5 failures of 2 backends, want 2 (one per backend):\n%s", n, logs.String())
	}
}

// TestBackendSlow: a backend that does not answer in time gets the
// client a 504 page, not the 502 of one that cannot be reached, and the
// log says it was slow, not unreachable (a trial read "unreachable" and
// looked for a network fault).
func TestBackendSlow(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	tr := proxy.NewTransport()
	tr.ResponseHeaderTimeout = 300 * time.Millisecond
	logger, logs := newLogger()
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: slow.URL}), Transport: tr, Logger: logger}
	p := startProxy(t, "127.0.0.1", h, logger)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://a.test/", nil)
	resp, err := p.client(t, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "did not answer in time") {
		t.Errorf("a backend past its timeout: %d %q, want 504 saying so", resp.StatusCode, body)
	}
	if out := logs.String(); !strings.Contains(out, `msg="backend did not answer in time"`) || strings.Contains(out, "unreachable") {
		t.Errorf("the log of a slow backend:\n%s\nwant \"backend did not answer in time\"", out)
	}
}

// TestBackendCut: a backend that closes the connection mid-answer gets
// the client a response cut short (not one that looks whole), and one
// Warn a minute per backend that says which site, backend, path and
// client, as nginx's "upstream prematurely closed connection" does (a
// trial read only httputil's "read error during body copy", with none of
// them); the cut is counted as a backend failure.
func TestBackendCut(t *testing.T) {
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 1000))
		buf.Flush()
		conn.Close()
	}))
	t.Cleanup(cut.Close)
	logger, logs := newLogger()
	traffic := new(proxy.Traffic)
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: cut.URL}), Logger: logger, Traffic: traffic}
	p := startProxy(t, "127.0.0.1", h, logger)
	c := p.client(t, true)
	for range 2 {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://a.test/download?secret=1", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(body) >= 100000 {
			t.Errorf("a cut answer read as %d bytes, err %v: want it cut short, with an error", len(body), err)
		}
	}
	out := logs.String()
	for _, want := range []string{`level=WARN msg="backend answer cut short" name=a.test backend=` + cut.URL + " path=/download remote_ip=127.0.0.1 err="} {
		if strings.Count(out, want) != 1 {
			t.Errorf("log has %q %d times, want once (once a minute per backend):\n%s", want, strings.Count(out, want), out)
		}
	}
	if strings.Contains(out, "secret") || strings.Contains(out, "level=WARN msg=\"httputil") {
		t.Errorf("log holds the query, or httputil's line without context at Warn:\n%s", out)
	}
	if n := traffic.Counts().Failures[proxy.FailureCut]; n != 2 {
		t.Errorf("%d cut answers counted, want 2", n)
	}
}

// TestNoLocalAddress checks the 502 of a same-IP rule that cannot apply,
// with the Handler used outside an http.Server.
func TestNoLocalAddress(t *testing.T) {
	logger, logs := newLogger()
	h := &proxy.Handler{Logger: logger}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "https://a.test/", nil))
	if w.Code != http.StatusBadGateway {
		t.Errorf("status %d, want 502", w.Code)
	}
	if log := logs.String(); !strings.Contains(log, "level=WARN") || !strings.Contains(log, "same-IP rule") {
		t.Errorf("log lacks the same-IP rule's error:\n%s", log)
	}
}

// TestMaxHeaderBytes checks that an oversized header gets 431 from the
// server, before any backend sees it.
func TestMaxHeaderBytes(t *testing.T) {
	backend := startEcho(t, "default")
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://a.test/x", nil)
	req.Header.Set("X-Big", strings.Repeat("x", proxy.DefaultMaxHeaderBytes+8<<10))
	resp, err := p.client(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// TestShutdownDrains checks that Shutdown lets a request in progress
// finish, refuses new connections meanwhile, and then returns nil.
func TestShutdownDrains(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-time.After(testTimeout):
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(backend.Close)
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	c := p.client(t, true)
	go func() {
		resp, err := c.Get("https://a.test/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("the request did not reach the backend")
	}

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		shut <- p.srv.Shutdown(ctx)
	}()
	p.waitServe(t) // Serve returns as soon as Shutdown starts
	if conn, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		conn.Close()
		t.Error("a new connection was accepted during Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown() = %v while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}

	close(release)
	select {
	case r := <-res:
		if r.err != nil || r.body != "done" {
			t.Errorf("in-flight request = %q, %v; want %q", r.body, r.err, "done")
		}
	case <-time.After(testTimeout):
		t.Fatal("the in-flight request did not finish")
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown() = %v, want nil", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Shutdown did not return after the request finished")
	}
	p.markStopped()
}

// TestShutdownCutsUpgraded checks that Shutdown waits for an upgraded
// connection until its deadline, then closes it and reports the deadline.
func TestShutdownCutsUpgraded(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(wsEcho))
	t.Cleanup(backend.Close)
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)
	conn, br := wsDial(t, p)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.srv.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown() = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("Shutdown returned after %v, before its deadline, with an upgraded connection open", d)
	}
	p.waitServe(t)
	p.markStopped()

	// The proxy closes the client's connection; a read ends at once, not
	// at the connection's deadline.
	conn.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after Shutdown = %v, want the connection closed", err)
	}
}

// TestShutdownCutsWaiting: a request still waiting for its backend at
// Shutdown's deadline gets a 503 page saying the proxy is restarting, with
// Retry-After, not the 502 that blames the backend, nor a cut connection
// (a trial's slow request got "backend is unreachable" at a stop).
func TestShutdownCutsWaiting(t *testing.T) {
	started := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
		case <-time.After(testTimeout):
		}
	}))
	t.Cleanup(backend.Close)
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}
	p := startProxy(t, "127.0.0.1", h, nil)
	res := make(chan *http.Response, 1)
	go func() {
		resp, err := p.client(t, true).Get("https://a.test/slow")
		if err != nil {
			t.Errorf("the request waiting at the stop: %v; want a 503 page", err)
			res <- nil
			return
		}
		res <- resp
	}()
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("the request did not reach the backend")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown() = %v, want context.DeadlineExceeded", err)
	} else if d, ok := errors.AsType[*proxy.DrainError](err); !ok || d.Cut != 1 {
		t.Errorf("Shutdown() = %v, want a *proxy.DrainError saying it cut the 1 request waiting", err)
	}
	p.waitServe(t)
	p.markStopped()
	var resp *http.Response
	select {
	case resp = <-res:
	case <-time.After(testTimeout):
		t.Fatal("no answer to the request waiting at the stop")
	}
	if resp == nil {
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "restarting") {
		t.Errorf("the request waiting at the stop got %d (Retry-After %q):\n%s\nwant a 503 page saying the proxy is restarting",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestServerNeedsCertificates checks the error of a Server without a
// source of certificates.
func TestServerNeedsCertificates(t *testing.T) {
	for _, tc := range []*tls.Config{nil, {}} {
		s := &proxy.Server{TLSConfig: tc}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(ln); !errors.Is(err, proxy.ErrNoTLSConfig) {
			t.Errorf("Serve() with TLSConfig %v = %v, want ErrNoTLSConfig", tc, err)
		}
		if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
			t.Error("Serve did not close its listener")
		}
		if err := s.ListenAndServe("127.0.0.1:0"); !errors.Is(err, proxy.ErrNoTLSConfig) {
			t.Errorf("ListenAndServe() with TLSConfig %v = %v, want ErrNoTLSConfig", tc, err)
		}
	}
}

// TestServerKeepsTLSConfig checks that serving leaves the caller's
// tls.Config as it was.
func TestServerKeepsTLSConfig(t *testing.T) {
	pki := newPKI(t)
	protos := make([]string, 1, 4)
	protos[0] = "acme-tls/1"
	tc := &tls.Config{Certificates: []tls.Certificate{pki.leaf}, NextProtos: protos}
	s := &proxy.Server{TLSConfig: tc}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: pki.roots, ServerName: "a.test", NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.ConnectionState().NegotiatedProtocol; got != "h2" {
		t.Errorf("negotiated %q, want h2", got)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown() = %v", err)
	}
	<-done
	if len(tc.NextProtos) != 1 || protos[:2][1] != "" {
		t.Errorf("caller's NextProtos changed: %q (backing array %q)", tc.NextProtos, protos[:cap(protos)])
	}
}

// TestSlowCertificate checks that a handshake whose GetCertificate takes
// longer than the header timeout (a first handshake waiting for its
// certificate's issuance, or for another node's issue lock) still
// completes, while a client that sends nothing is still cut off after
// the header timeout.
func TestSlowCertificate(t *testing.T) {
	pki := newPKI(t)
	const timeout = 300 * time.Millisecond
	tc := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		time.Sleep(3 * timeout)
		return &pki.leaf, nil
	}}
	s := &proxy.Server{TLSConfig: tc, ReadHeaderTimeout: timeout, Handler: echoHandler("slow")}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})

	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: pki.roots, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("handshake with a GetCertificate slower than the header timeout: %v", err)
	}
	conn.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("request after a slow handshake: %v", err)
	}
	resp.Body.Close()
	conn.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}

	idle, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	idle.SetReadDeadline(start.Add(testTimeout))
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a client that sent nothing: read %v, want the connection closed", err)
	}
	if d := time.Since(start); d > 5*timeout {
		t.Errorf("a client that sent nothing was cut off after %v, want about %v", d, timeout)
	}
}

// TestMaxConnsPerClient: a client address that holds MaxConnsPerClient
// connections (idle, handshakes done) gets its next one closed before the
// handshake, with a warning; another address is still served.
func TestMaxConnsPerClient(t *testing.T) {
	backend := startEcho(t, "default")
	logger, logs := newLogger()
	pki := newPKI(t)
	addr := serveOn(t, &proxy.Server{
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pki.leaf}},
		Handler:           &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})},
		Logger:            logger,
		MaxConnsPerClient: 2,
	})
	handshake := func(local string) error {
		d := &net.Dialer{Timeout: testTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pki.roots, ServerName: "a.test"})
		if err == nil { // closed before the server's Shutdown, which waits 5 s for connections that sent no request
			t.Cleanup(func() { c.Close() })
		}
		return err
	}
	for i := range 2 {
		if err := handshake("127.0.0.1"); err != nil {
			t.Fatalf("connection %d of 2 allowed: %v", i+1, err)
		}
	}
	if err := handshake("127.0.0.1"); err == nil {
		t.Fatal("a third connection from 127.0.0.1 with MaxConnsPerClient 2 completed its handshake")
	}
	if !strings.Contains(logs.String(), "connection limit of one client reached") {
		t.Errorf("no warning about the client's limit:\n%s", logs)
	}
	if _, err := testsvc.OtherLoopback(); err != nil {
		t.Logf("%v: another client is not tried", err)
		return
	}
	if err := handshake("127.0.0.2"); err != nil {
		t.Errorf("another client address was refused while 127.0.0.1 was at its limit: %v", err)
	}
}

// TestRequestsPerClient: over HTTP/2, requests in progress count as
// connections do: one connection carrying more than MaxConnsPerClient
// requests at once gets 503 (Retry-After) for the rest, with a warning, so
// one client cannot hold a backend connection per stream (a security
// trial held 1,000 backend sockets with 4 connections and
// MaxConnsPerClient 4); once they end, requests pass again. Refusals
// counts each 503 under the listener's address.
func TestRequestsPerClient(t *testing.T) {
	release := make(chan struct{})
	var count atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			count.Add(1)
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(backend.Close)
	logger, logs := newLogger()
	pki := newPKI(t)
	refusals := new(connlimit.Refusals)
	addr := serveOn(t, &proxy.Server{
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pki.leaf}},
		Handler:           &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})},
		Logger:            logger,
		MaxConnsPerClient: 3,
		Refusals:          refusals,
	})
	_, port, _ := net.SplitHostPort(addr)
	p := &testProxy{addr: addr, port: port, pki: pki}
	c := p.client(t, true)
	// One connection first: five requests at once could each dial one.
	if resp, err := c.Get("https://a.test:" + p.port + "/"); err != nil || resp.ProtoMajor != 2 {
		t.Fatalf("the first request: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	type answer struct {
		code  int
		retry string
		proto int
	}
	answers := make(chan answer, 5)
	for range 5 {
		go func() {
			resp, err := c.Get("https://a.test:" + p.port + "/hold")
			if err != nil {
				answers <- answer{code: -1}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), resp.ProtoMajor}
		}()
	}
	// Every request is either held at the backend or refused; the first
	// request's slot may still be taken for a moment after its answer.
	var refused, held int
	for deadline := time.Now().Add(testTimeout); refused+int(count.Load()) < 5; {
		select {
		case a := <-answers:
			if a.code != http.StatusServiceUnavailable || a.retry == "" || a.proto != 2 {
				t.Fatalf("a request over the limit got %+v, want 503 with Retry-After over HTTP/2", a)
			}
			refused++
		case <-time.After(time.Until(deadline)):
			t.Fatalf("after %v: %d refused, %d at the backend, want 5 in all", testTimeout, refused, count.Load())
		case <-time.After(10 * time.Millisecond):
		}
	}
	held = int(count.Load())
	if held > 3 || refused < 2 {
		t.Errorf("%d requests reached the backend and %d were refused; want at most 3 and at least 2", held, refused)
	}
	close(release)
	for range held {
		if a := <-answers; a.code != http.StatusOK {
			t.Errorf("a request within the limit got %+v", a)
		}
	}
	if resp, err := c.Get("https://a.test:" + p.port + "/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("after they ended: %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if !strings.Contains(logs.String(), "request limit of one client reached; answering its new requests with 503") {
		t.Errorf("no warning of the client's request limit:\n%s", logs)
	}
	want := map[connlimit.RefusalKey]uint64{{Listener: addr}: 0, {Listener: addr, PerClient: true}: 0,
		{Listener: addr, Requests: true}: 0, {Listener: addr, Requests: true, PerClient: true}: uint64(refused)}
	if got := refusals.Counts(); !maps.Equal(got, want) {
		t.Errorf("Refusals: %v, want %v", got, want)
	}
}

// TestProxyProtocol: with ProxyProtocolFrom, a connection from a trusted
// balancer starts with a PROXY header whose client address reaches the
// backend as X-Forwarded-For; one from it without the header fails; a
// client elsewhere cannot claim an address with a header of its own, and
// is served as itself without one.
func TestProxyProtocol(t *testing.T) {
	backend := startEcho(t, "default")
	pki := newPKI(t)
	addr := serveOn(t, &proxy.Server{
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pki.leaf}},
		Handler:           &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})},
		ProxyProtocolFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	fetch := func(from, header string) (seen, error) {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pki.roots},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				d := net.Dialer{Timeout: testTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil && header != "" {
					_, err = io.WriteString(c, header)
				}
				return c, err
			},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: testTimeout}).Get("https://a.test/x")
		if err != nil {
			return seen{}, err
		}
		defer resp.Body.Close()
		var s seen
		return s, json.NewDecoder(resp.Body).Decode(&s)
	}
	const claim = "PROXY TCP4 198.51.100.9 127.0.0.1 40000 443\r\n"
	if s, err := fetch("127.0.0.1", claim); err != nil || s.XFF != "198.51.100.9" {
		t.Errorf("through the trusted balancer: X-Forwarded-For %q, %v; want 198.51.100.9", s.XFF, err)
	}
	if _, err := fetch("127.0.0.1", ""); err == nil {
		t.Error("a connection from the trusted balancer without a PROXY header was served")
	}
	if _, err := testsvc.OtherLoopback(); err != nil {
		t.Logf("%v: a client elsewhere is not tried", err)
		return
	}
	if s, err := fetch("127.0.0.2", claim); err == nil {
		t.Errorf("a client that is not a trusted balancer claimed an address with a header: X-Forwarded-For %q", s.XFF)
	}
	if s, err := fetch("127.0.0.2", ""); err != nil || s.XFF != "127.0.0.2" {
		t.Errorf("a client elsewhere, no header: X-Forwarded-For %q, %v; want 127.0.0.2", s.XFF, err)
	}
}

// serveOn serves srv on a free 127.0.0.1 port and shuts it down at
// cleanup (after the cleanups the test registers later).
func serveOn(t *testing.T, srv *proxy.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String()
}

// TestTrustBackends: an https backend with a self-signed certificate is
// unreachable (502) through a Handler until TrustBackends adds that
// certificate to the transport's roots; PEM with no certificate is
// ErrNoRoots.
func TestTrustBackends(t *testing.T) {
	be := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls backend") }))
	defer be.Close()
	for _, trust := range []bool{false, true} {
		tr := proxy.NewTransport()
		if trust {
			if err := proxy.TrustBackends(tr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: be.Certificate().Raw})); err != nil {
				t.Fatal(err)
			}
		}
		h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: be.URL}), Transport: tr, Logger: slog.New(slog.DiscardHandler)}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "https://a.test/", nil))
		if want := map[bool]int{false: http.StatusBadGateway, true: http.StatusOK}[trust]; rec.Code != want {
			t.Errorf("TrustBackends %v: status %d, want %d (%s)", trust, rec.Code, want, rec.Body)
		}
		tr.CloseIdleConnections()
	}
	if err := proxy.TrustBackends(proxy.NewTransport(), []byte("not PEM")); !errors.Is(err, proxy.ErrNoRoots) {
		t.Errorf("TrustBackends(not PEM) = %v, want ErrNoRoots", err)
	}
}

// TestH2CUpgradeStripped: a request asking to upgrade to h2c reaches the
// backend as a plain request: a backend that answered 101 made the
// connection a raw tunnel whose requests skipped the Host check and the
// X-Forwarded-* headers (security trial). WebSocket upgrades still pass
// (TestWebSocket).
func TestH2CUpgradeStripped(t *testing.T) {
	var got atomic.Value
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Upgrade") + "|" + r.Header.Get("Http2-Settings"))
		io.WriteString(w, "plain")
	}))
	t.Cleanup(backend.Close)
	p := startProxy(t, "127.0.0.1", &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL})}, nil)
	req, err := http.NewRequest(http.MethodGet, "https://a.test:"+p.port+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
	resp, err := p.client(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "plain" || got.Load() != "|" {
		t.Errorf("h2c upgrade: %d %q, the backend saw Upgrade|HTTP2-Settings %q; want 200, and neither", resp.StatusCode, body, got.Load())
	}
}

// TestBadRequestBody: a request body the client got wrong (a bad chunk
// size) is the client's 400, logged at debug, not a 502 with a warning
// that the backend is unreachable, which anyone could then have logged at
// will (a trial); and an HTTP/1.0 request without Host gets the TLS
// connection's name as X-Forwarded-Host, not an empty one.
func TestBadRequestBody(t *testing.T) {
	backend := startEcho(t, "default")
	logger, logs := newLogger()
	h := &proxy.Handler{Router: mustRouter(t, proxy.RouterConfig{Default: backend.URL}), Logger: logger}
	p := startProxy(t, "127.0.0.1", h, logger)
	send := func(req string) string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr,
			&tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(conn)
		return string(out)
	}
	for _, body := range []string{"5\r\nhello\r\nZZ\r\n", "ffffffffffffffffff1\r\nhello\r\n0\r\n\r\n"} {
		out := send("POST /x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body)
		if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.Contains(out, "body could not be read") {
			t.Errorf("a bad chunked body %q: %.80q; want 400", body, out)
		}
	}
	if log := logs.String(); strings.Contains(log, "unreachable") || strings.Contains(log, "level=WARN") {
		t.Errorf("a client's bad body is logged as the backend's fault:\n%s", log)
	}
	out := send("GET /echo HTTP/1.0\r\n\r\n")
	if !strings.Contains(out, `"XHost":"a.test"`) {
		t.Errorf("HTTP/1.0 without Host: the backend saw %s; want X-Forwarded-Host a.test", out)
	}
}
