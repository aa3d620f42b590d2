package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestFirstHandshakeLatency measures what a client waits at the first
// handshake for a new name: the whole on-demand issuance against Pebble
// (PEBBLE_VA_NOSLEEP=1), 50 names one after another. certkeeper polls the
// CA as soon as its solver has answered the validation request; clients
// that sleep between polls need 0.5–1 s here.
func TestFirstHandshakeLatency(t *testing.T) {
	const names = 50
	ca := testca.Start(t, testca.Options{})
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("*.bench.test"),
		Storage: st,
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL:   ca.DirectoryURL(),
			HTTPClient:     ca.HTTPClient(),
			Profile:        "default",
			ChallengeOrder: []string{acmeca.TLSALPN01},
		}},
	}
	defer m.Close()
	addr := listen(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort())), m.TLSConfig())
	roots := ca.IssuingRootPool(t)

	// One warm-up name: account registration is a one-time cost.
	if _, err := dial(addr, "warmup.bench.test", roots); err != nil {
		t.Fatal(err)
	}
	lat := make([]time.Duration, 0, names)
	for i := range names {
		start := time.Now()
		if _, err := dial(addr, fmt.Sprintf("n%d.bench.test", i), roots); err != nil {
			t.Fatalf("first handshake %d: %v", i, err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	median, p90, max := lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)-1]
	t.Logf("first handshake over %d new names: median %s, p90 %s, max %s", names, median, p90, max)
	if median > 100*time.Millisecond {
		t.Errorf("median first-handshake latency %s, want ≤ 100ms", median)
	}
	if n := ca.Orders(); n != names+1 {
		t.Errorf("orders = %d, want %d", n, names+1)
	}
}

func listen(t testing.TB, addr string, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func dial(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}
