package certclient_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certclient"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

const token = "test-token-0123456789"

// apiServer is a certserver on Pebble's http-01 port, so http-01 is
// answered on the API's own listener, as "certkeeper server" does.
type apiServer struct {
	addr string
	h    *certserver.Handler
	srv  *http.Server
}

func startAPI(t *testing.T, ca *testca.CA, profile string, names ...string) *apiServer {
	t.Helper()
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist(names...),
		Storage: filestore.New(t.TempDir()),
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: profile,
			ChallengeOrder: []string{acmeca.HTTP01},
		}},
	}
	t.Cleanup(func() { m.Close() })
	a := &apiServer{
		addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())),
		h:    &certserver.Handler{Manager: m, Tokens: []string{token}, Audit: slog.New(slog.NewTextHandler(io.Discard, nil))},
	}
	a.start(t)
	return a
}

func (a *apiServer) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after a stop
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	a.srv = &http.Server{Handler: a.h, ReadHeaderTimeout: 10 * time.Second}
	go a.srv.Serve(ln)
	t.Cleanup(func() { a.srv.Close() })
}

func (a *apiServer) stop() { a.srv.Close() }

// tlsServer is a Go TLS server whose certificates come from c.
func tlsServer(t *testing.T, c *certclient.Client) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") }))
	s.TLS = &tls.Config{GetCertificate: c.GetCertificate}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func leafOf(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 40 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestClient: a Go TLS server using a Client serves the server's
// certificate (obtained on the first request through http-01 answered on
// the API listener); with the server stopped it keeps serving past the
// ttl; with a 60 s Pebble profile, the renewed certificate reaches it
// before the old one expires, with no request but the handshakes.
func TestClient(t *testing.T) {
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"short": {Description: "60 s", ValidityPeriod: 60 * time.Second},
	}})
	roots := ca.IssuingRootPool(t)
	api := startAPI(t, ca, "short", "a.test")
	c := &certclient.Client{URL: "http://" + api.addr, Token: token, Retry: time.Second}
	t.Cleanup(func() { c.Close() })
	addr := tlsServer(t, c)

	first := leafOf(t, addr, "a.test", roots)
	if err := first.VerifyHostname("a.test"); err != nil {
		t.Fatal(err)
	}
	// Served from memory: the same certificate, no new order.
	orders := ca.Orders()
	if again := leafOf(t, addr, "a.test", roots); !again.Equal(first) {
		t.Errorf("second handshake served serial %s, want %s", again.SerialNumber, first.SerialNumber)
	}

	api.stop()
	// Past the ttl (a sixth of 60 s), with the server down: still served.
	deadline := time.Now().Add(12 * time.Second)
	for time.Now().Before(deadline) {
		if got := leafOf(t, addr, "a.test", roots); !got.Equal(first) {
			t.Fatalf("server down: served serial %s, want the held %s", got.SerialNumber, first.SerialNumber)
		}
		time.Sleep(time.Second)
	}
	if got := ca.Orders(); got != orders {
		t.Errorf("orders while the server was down: %d, want %d", got, orders)
	}

	api.start(t)
	for {
		got := leafOf(t, addr, "a.test", roots)
		if !got.Equal(first) {
			if !time.Now().Before(first.NotAfter) {
				t.Fatalf("renewed certificate arrived at %s, after the old one expired (%s)", time.Now(), first.NotAfter)
			}
			t.Logf("renewed certificate served %s before the old one expired", time.Until(first.NotAfter).Round(time.Second))
			break
		}
		if time.Now().After(first.NotAfter) {
			t.Fatalf("the old certificate expired at %s and no renewed one reached the client", first.NotAfter)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestClientRefused: a name the server refuses fails the handshake, and
// a refused name is not asked again at once.
func TestClientRefused(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	api := startAPI(t, ca, "default", "a.test")
	c := &certclient.Client{URL: "http://" + api.addr, Token: token}
	t.Cleanup(func() { c.Close() })
	if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.test"}); err == nil {
		t.Fatal("GetCertificate(other.test) succeeded, want the server's 403")
	}
	bad := &certclient.Client{URL: "http://" + api.addr, Token: "wrong-token-0123456789"}
	t.Cleanup(func() { bad.Close() })
	_, err := bad.Fetch(t.Context(), "a.test")
	if se, ok := err.(*certclient.StatusError); !ok || se.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Fetch with a wrong token: %v, want a 401 StatusError", err)
	}
}

// TestCacheSize: the certificates held are bounded by CacheSize, not by
// the names asked for; the least recently asked for are dropped and
// fetched again when asked for, while those in use stay in memory.
func TestCacheSize(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("*.cache.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	var fetches atomic.Int64
	h := &certserver.Handler{Manager: m, Tokens: []string{token}, Audit: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c := &certclient.Client{URL: srv.URL, Token: token, CacheSize: 32}
	t.Cleanup(func() { c.Close() })
	get := func(name string) {
		t.Helper()
		if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	get("hot.cache.test")
	for i := range 200 {
		get(fmt.Sprintf("n%d.cache.test", i))
		if i%8 == 0 {
			time.Sleep(2 * time.Millisecond) // lastUsed has a resolution of a millisecond
			get("hot.cache.test")
		}
	}
	if n := c.Held(); n > 32 {
		t.Errorf("%d certificates held with CacheSize 32", n)
	}
	before := fetches.Load()
	get("hot.cache.test")
	get("n199.cache.test")
	if n := fetches.Load() - before; n != 0 {
		t.Errorf("%d fetches for the names in use, want none (served from memory)", n)
	}
	get("n0.cache.test")
	if n := fetches.Load() - before; n != 1 {
		t.Errorf("%d fetches for a name dropped long ago, want 1", n)
	}
}

// TestFallbacks: with URL's server down, Fallbacks are asked in turn and
// the one that answered is asked first from then on; a refusal (403) is
// an answer, not asked again elsewhere; with every server down the error
// names each. The servers share one storage, as docs/server.md's
// "Several servers" run.
func TestFallbacks(t *testing.T) {
	st := filestore.New(t.TempDir())
	var counts [2]atomic.Int64
	var urls [2]string
	servers := make([]*httptest.Server, 2)
	for i := range servers {
		m := &certkeeper.Manager{Policy: policy.Allowlist("*.fb.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
		t.Cleanup(func() { m.Close() })
		h := &certserver.Handler{Manager: m, Tokens: []string{token}, Audit: slog.New(slog.NewTextHandler(io.Discard, nil))}
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			counts[i].Add(1)
			h.ServeHTTP(w, r)
		}))
		t.Cleanup(servers[i].Close)
		urls[i] = servers[i].URL
	}
	down := "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)) // nothing listens
	var logs testsvc.Buffer
	c := &certclient.Client{URL: down, Fallbacks: urls[:], Token: token, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	t.Cleanup(func() { c.Close() })
	get := func(name string) error {
		_, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		return err
	}
	if err := get("a.fb.test"); err != nil {
		t.Fatalf("URL down, fallbacks up: %v", err)
	}
	if counts[0].Load() != 1 || counts[1].Load() != 0 {
		t.Errorf("requests to the fallbacks: %d, %d; want the first only", counts[0].Load(), counts[1].Load())
	}
	if !strings.Contains(logs.String(), "certificate server did not answer; another one did") {
		t.Errorf("log %q; want a warning naming the server that did not answer", logs.String())
	}
	if err := get("b.fb.test"); err != nil || counts[0].Load() != 2 {
		t.Errorf("the next name: %v, %d requests to the first fallback; want it asked first now", err, counts[0].Load())
	}
	// A refusal is an answer.
	if err := get("refused.other.test"); err == nil || counts[1].Load() != 0 {
		t.Errorf("a refused name: %v, %d requests to the second fallback; want the refusal, not asked again", err, counts[1].Load())
	}
	// The first fallback down: the second answers.
	servers[0].Close()
	if err := get("c.fb.test"); err != nil || counts[1].Load() != 1 {
		t.Errorf("first fallback down: %v, %d requests to the second; want its answer", err, counts[1].Load())
	}
	servers[1].Close()
	_, err := c.Fetch(t.Context(), "d.fb.test")
	if err == nil || !strings.Contains(err.Error(), "no certificate server answered") || !strings.Contains(err.Error(), strings.TrimPrefix(urls[0], "http://")) ||
		!strings.Contains(err.Error(), strings.TrimPrefix(down, "http://")) {
		t.Errorf("every server down: %v; want an error naming each", err)
	}
}

// TestCachedAllocs: a handshake for a name the Client holds allocates
// nothing (the per-millisecond last-use stamp included).
func TestCachedAllocs(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.alloc.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(&certserver.Handler{Manager: m, Tokens: []string{token}, Audit: slog.New(slog.DiscardHandler)})
	t.Cleanup(srv.Close)
	c := &certclient.Client{URL: srv.URL, Token: token}
	t.Cleanup(func() { c.Close() })
	hello := &tls.ClientHelloInfo{ServerName: "a.alloc.test"}
	if _, err := c.GetCertificate(hello); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { c.GetCertificate(hello) }); n != 0 {
		t.Errorf("a cached GetCertificate allocates %v times, want 0", n)
	}
}

// TestClientHTTPS: a Client of a server whose API is HTTPS under a
// private certificate (certkeeper server --api-cert) trusts it through
// TLSConfig, and one given its own HTTPClient with Go's zero Timeout
// (no limit) waits for a slow first answer and refreshes: that zero once
// bounded a first fetch at 1 s and each refresh at nothing, so new names
// failed and refreshes never reached the server. Plain http:// to the
// HTTPS API says what to change.
func TestClientHTTPS(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("*.tls.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	h := &certserver.Handler{Manager: m, Tokens: []string{token}, Audit: slog.New(slog.DiscardHandler), MaxTTL: time.Second}
	var gets atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		time.Sleep(1500 * time.Millisecond) // an issuance at a real CA takes seconds
		h.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	for _, tc := range []struct {
		what string
		c    *certclient.Client
	}{
		{"TLSConfig", &certclient.Client{TLSConfig: &tls.Config{RootCAs: roots}}},
		{"HTTPClient without Timeout", &certclient.Client{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			var logs testsvc.Buffer
			c := tc.c
			c.URL, c.Token, c.Retry, c.Logger = srv.URL, token, 200*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil))
			t.Cleanup(func() { c.Close() })
			hello := &tls.ClientHelloInfo{ServerName: "a.tls.test"}
			if _, err := c.GetCertificate(hello); err != nil {
				t.Fatalf("first fetch (1.5 s): %v", err)
			}
			before := gets.Load()
			for deadline := time.Now().Add(15 * time.Second); gets.Load() < before+2 && time.Now().Before(deadline); {
				if _, err := c.GetCertificate(hello); err != nil {
					t.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n := gets.Load() - before; n < 2 {
				t.Errorf("%d refreshes reached the server in 15 s with a ttl of 1 s, want 2 or more", n)
			}
			if strings.Contains(logs.String(), "refreshing a certificate from the server failed") {
				t.Errorf("a refresh failed: %s", logs.String())
			}
		})
	}

	plain := &certclient.Client{URL: strings.Replace(srv.URL, "https://", "http://", 1), Token: token}
	t.Cleanup(func() { plain.Close() })
	if _, err := plain.Fetch(t.Context(), "a.tls.test"); err == nil || !strings.Contains(err.Error(), "use an https:// URL") {
		t.Errorf("http:// to the HTTPS API: %v; want the hint to use https://", err)
	}
}

// countingHandler counts the log records at each level whose message
// starts with prefix.
type countingHandler struct {
	prefix string
	warn   atomic.Int32
	debug  atomic.Int32
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		switch r.Level {
		case slog.LevelWarn:
			h.warn.Add(1)
		case slog.LevelDebug:
			h.debug.Add(1)
		}
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestRefusedRefresh: once the server refuses this client a name it holds
// (403: its token's names= no longer include it), the client stops
// serving it, as the server may have revoked and replaced it; a refresh
// that fails otherwise (401: a token the server no longer holds) keeps
// the certificate, retried with a growing wait and logged once at Warn.
// Before, both served the certificate until it expired, retrying every
// Retry with a Warn line each (fleet trial: 50 lines in 5 minutes for one
// name).
func TestRefusedRefresh(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test", "b.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	tokens := filepath.Join(t.TempDir(), "tokens")
	scope := func(line string) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := &certserver.Handler{Manager: m, MaxTTL: time.Second, Audit: slog.New(slog.DiscardHandler)}
	scope(token + " names=a.test,b.test")
	if err := h.ReloadTokens(tokens); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	logs := &countingHandler{prefix: "refreshing a certificate from the server failed"}
	c := &certclient.Client{URL: srv.URL, Token: token, Retry: 100 * time.Millisecond, Logger: slog.New(logs)}
	t.Cleanup(func() { c.Close() })
	for _, name := range []string{"a.test", "b.test"} {
		if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err != nil {
			t.Fatal(err)
		}
	}

	scope(token + " names=b.test")
	if err := h.ReloadTokens(tokens); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a.test still served 10 s after the server refused it to this client (403)")
		}
	}
	if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); err != nil {
		t.Fatalf("b.test, still this client's: %v", err)
	}

	scope("another-token-0123456789")
	if err := h.ReloadTokens(tokens); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // ttl 1 s, then failures from 100 ms doubling: about six
	if _, err := c.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); err != nil {
		t.Errorf("b.test with the token refused (401): %v; want the certificate held served", err)
	}
	if w, d := logs.warn.Load(), logs.debug.Load(); w != 1 || d < 2 || d > 8 {
		t.Errorf("refresh failures logged %d times at Warn, %d at Debug in 5 s; want 1, and a few (backoff from 100 ms)", w, d)
	}
}
