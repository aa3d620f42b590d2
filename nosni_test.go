package certkeeper_test

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/metrics"
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
