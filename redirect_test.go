package certkeeper_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRedirectHTTP: RedirectHTTP sends a request to the same host and URL
// over HTTPS (the port dropped), and refuses a Host that would make the
// Location point elsewhere. An IPv6 literal without a port ("[::1]") was
// bracketed twice, giving the unusable https://[[::1]]/p.
func TestRedirectHTTP(t *testing.T) {
	for _, tt := range []struct {
		host, method, want string
		code               int
	}{
		{"a.test", http.MethodGet, "https://a.test/p?q=1", http.StatusMovedPermanently},
		{"a.test:80", http.MethodGet, "https://a.test/p?q=1", http.StatusMovedPermanently},
		{"a.test", http.MethodPost, "https://a.test/p?q=1", http.StatusPermanentRedirect},
		{"192.0.2.7:80", http.MethodGet, "https://192.0.2.7/p?q=1", http.StatusMovedPermanently},
		{"[2001:db8::1]:80", http.MethodGet, "https://[2001:db8::1]/p?q=1", http.StatusMovedPermanently},
		{"[2001:db8::1]", http.MethodGet, "https://[2001:db8::1]/p?q=1", http.StatusMovedPermanently},
		{"[::1]", http.MethodHead, "https://[::1]/p?q=1", http.StatusMovedPermanently},
		{"", http.MethodGet, "", http.StatusBadRequest},
		{"a.test@evil.example", http.MethodGet, "", http.StatusBadRequest},
		{"evil.example/x", http.MethodGet, "", http.StatusBadRequest},
		{"[]", http.MethodGet, "", http.StatusBadRequest},
		{"[a.test]", http.MethodGet, "", http.StatusBadRequest},
	} {
		r := httptest.NewRequest(tt.method, "http://x/p?q=1", nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		certkeeper.RedirectHTTP.ServeHTTP(w, r)
		if w.Code != tt.code || w.Header().Get("Location") != tt.want {
			t.Errorf("%s Host %q: %d Location %q, want %d %q", tt.method, tt.host, w.Code, w.Header().Get("Location"), tt.code, tt.want)
		}
	}
}

// TestRedirectHTTPSPort: the redirect names the HTTPS port given (an
// HTTPS server on 8443 got redirects to 443, where nothing listened: a
// newcomer trial of library.md's snippet), IPv6 literals included; 443
// is RedirectHTTP's URL. RedirectHTTPSListener names it only for a
// client that named the HTTP port (it reached it directly), and sends one
// that did not (port 80, or a forward from it) to 443 (a trial of the
// proxy on :26080 and :26443 was sent to 443, where nothing listened).
func TestRedirectHTTPSPort(t *testing.T) {
	port, listener := certkeeper.RedirectHTTPSPort, certkeeper.RedirectHTTPSListener
	for _, tt := range []struct {
		redirect         func(string) http.Handler
		port, host, want string
	}{
		{port, "8443", "a.test:80", "https://a.test:8443/p?q=1"},
		{port, "8443", "[2001:db8::1]", "https://[2001:db8::1]:8443/p?q=1"},
		{port, "443", "a.test", "https://a.test/p?q=1"},
		{port, "", "a.test", "https://a.test/p?q=1"},
		{listener, "26443", "a.test:26080", "https://a.test:26443/p?q=1"},
		{listener, "26443", "[2001:db8::1]:26080", "https://[2001:db8::1]:26443/p?q=1"},
		{listener, "8443", "a.test", "https://a.test/p?q=1"},
		{listener, "8443", "[2001:db8::1]", "https://[2001:db8::1]/p?q=1"},
		{listener, "443", "a.test:8080", "https://a.test/p?q=1"},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://x/p?q=1", nil)
		r.Host = tt.host
		w := httptest.NewRecorder()
		tt.redirect(tt.port).ServeHTTP(w, r)
		if got := w.Header().Get("Location"); w.Code != http.StatusMovedPermanently || got != tt.want {
			t.Errorf("port %q, Host %q: %d %q, want 301 %q", tt.port, tt.host, w.Code, got, tt.want)
		}
	}
}

// TestHTTPHandlerBodyUnread: on an http-01 listener (HTTPHandler with the
// redirect), a request that announces a body and sends none is answered
// at once, the challenge's 404 or the redirect, and its connection closed,
// where net/http's draining of the body held it until the read timeout
// (a security trial's slow bodies held port 80 for 30 s).
func TestHTTPHandlerBodyUnread(t *testing.T) {
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: filestore.New(t.TempDir())} // not the default directory
	defer m.Close()
	srv := httptest.NewUnstartedServer(m.HTTPHandler(certkeeper.RedirectHTTPSListener("8443")))
	srv.Config.ReadTimeout = 30 * time.Second
	srv.Start()
	defer srv.Close()
	for _, tt := range []struct{ req, want string }{
		{"POST /.well-known/acme-challenge/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n", " 404 "},
		{"POST /form HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n", " 308 "},
		{"POST /form HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n", " 308 "},
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		io.WriteString(c, tt.req)
		got, err := io.ReadAll(c) // to the close
		c.Close()
		if took := time.Since(start); err != nil || !strings.Contains(string(got), tt.want) || took > 3*time.Second {
			t.Errorf("%q: %q, closed after %s (%v); want%sat once and the connection closed", tt.req, got, took.Round(time.Millisecond), err, tt.want)
		}
	}
}
