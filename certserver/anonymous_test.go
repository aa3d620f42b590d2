package certserver_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestAnonymousLoopbackOnly: an Anonymous handler (--no-auth) hands keys
// out only to a request that names a loopback host and came in on a
// loopback address. A web page that makes the operator's browser ask
// through a name of its own resolving to 127.0.0.1 (DNS rebinding) sends
// that name in Host and gets 421, no key; so does a request that came in
// on an address beyond loopback (a socket bound wider than the flag).
func TestAnonymousLoopbackOnly(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	s := httptest.NewServer(&certserver.Handler{Manager: m, Anonymous: true, IssueTimeout: 10 * time.Second})
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	for _, tt := range []struct {
		host string
		want int
	}{
		{"127.0.0.1:" + port, 200},
		{"localhost:" + port, 200},
		{"LOCALHOST", 200},
		{"[::1]:" + port, 200},
		{"rebind.attacker.example:" + port, 421},
		{"attacker.example", 421},
		{"127.0.0.1.nip.io:" + port, 421},
		{"192.0.2.1:" + port, 421},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/v1/certificates/a.test", nil)
		req.Host = tt.host
		req.Header.Set("Origin", "http://"+tt.host)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 4096)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %s: %d %.200s, want %d", tt.host, resp.StatusCode, body[:n], tt.want)
		}
		if tt.want == 421 && (strings.Contains(string(body[:n]), "PRIVATE KEY") || !strings.Contains(string(body[:n]), "DNS rebinding")) {
			t.Errorf("Host %s: the refusal %q gives a key or does not say why", tt.host, body[:n])
		}
	}

	// A request that came in on an address beyond loopback, whatever its
	// Host says; challenges and /healthz are answered to any Host.
	h := &certserver.Handler{Manager: m, Anonymous: true}
	for path, want := range map[string]int{"/v1/certificates/a.test": 421, "/healthz": 200, "/.well-known/acme-challenge/x": 404} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+path, nil)
		req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 8999}))
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("GET %s on a connection to 192.0.2.1: %d %q, want %d", path, rec.Code, rec.Body, want)
		}
	}
}
