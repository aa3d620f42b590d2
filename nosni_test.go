package certkeeper_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestNoSNIRefused: a client that connects by IP address sends no SNI; with
// no DefaultName its handshake fails, and the operator learns why: a
// refused-name log line (once per interval, not per handshake), a Denied
// event with ErrNoSNI, and the metrics' no_sni reason. Real TLS handshakes
// over loopback.
func TestNoSNIRefused(t *testing.T) {
	st := filestore.New(t.TempDir())
	var logs testsvc.Buffer
	events := make(chan certkeeper.Event, 16)
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		OnEvent: func(e certkeeper.Event) { events <- e }}
	defer m.Close()
	h := metrics.Handler(m)
	addr := serveTLS(t, &tls.Config{GetCertificate: m.GetCertificate}, 0)
	for range 2 {
		d := &net.Dialer{Timeout: 5 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // an IP: no SNI
		if err == nil {
			c.Close()
			t.Fatal("a handshake without SNI succeeded with no DefaultName")
		}
		select {
		case e := <-events:
			if e.Kind != certkeeper.Denied || !errors.Is(e.Err, certkeeper.ErrNoSNI) {
				t.Errorf("event %v (%v), want Denied with ErrNoSNI", e.Kind, e.Err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event for the handshake without SNI")
		}
	}
	if n := strings.Count(logs.String(), "name refused"); n != 1 || !strings.Contains(logs.String(), "no server name (SNI)") {
		t.Errorf("logged %d refusals, want 1 naming the missing SNI:\n%s", n, logs.String())
	}
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if body = rec.Body.String(); strings.Contains(body, `certkeeper_denied_names_total{reason="no_sni"} 2`) {
			return
		}
	}
	t.Errorf("metrics lack the two no_sni refusals:\n%s", body)
}

// TestIPDefaultName: a client that connects to an IP address sends no
// SNI; with that address as DefaultName, and the policy allowing it, it
// gets an IP certificate on demand (real handshakes over 127.0.0.1), and
// CertificateFor takes an IP address too. An IP address sent as SNI,
// which RFC 6066 forbids, is still refused.
func TestIPDefaultName(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Policy: policy.Allowlist("127.0.0.1", "::1"), DefaultName: "127.0.0.1"}
	defer m.Close()
	addr := serveTLS(t, &tls.Config{GetCertificate: m.GetCertificate}, 0)
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) // an IP: no SNI
	if err != nil {
		t.Fatalf("a handshake without SNI, DefaultName 127.0.0.1: %v", err)
	}
	leaf := c.ConnectionState().PeerCertificates[0]
	c.Close()
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the certificate served for DefaultName 127.0.0.1: %v", err)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "::1"}); err == nil || !strings.Contains(err.Error(), "IP address not allowed") {
		t.Errorf("an IP address as SNI: %v, want it refused (RFC 6066 section 3)", err)
	}
	s, err := m.CertificateFor(t.Context(), "::1", netip.Addr{})
	if err != nil || s.Certificate.Leaf.VerifyHostname("::1") != nil {
		t.Errorf("CertificateFor(::1) = %v, %v; want a certificate for ::1", s.Names, err)
	}
	if _, err := m.CertificateFor(t.Context(), "10.0.0.1", netip.Addr{}); !errors.Is(err, policy.ErrDenied) {
		t.Errorf("CertificateFor(10.0.0.1), not allowed: %v, want the policy's refusal", err)
	}
}
