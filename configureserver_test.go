package certkeeper_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// slowIssuer is the local CA taking delay for each certificate, as a CA's
// validation does.
type slowIssuer struct {
	*localca.CA
	delay time.Duration
}

func (s slowIssuer) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.CA.Issue(ctx, req)
}

// TestConfigureServer: an http.Server with a ReadHeaderTimeout shorter
// than a new name's issuance completes the first handshake for it when
// configured by ConfigureServer (a library trial's server with 3 s, and
// Serve's own 10 s, failed the first client of a certificate that took
// longer, logging only "i/o timeout"); the server's own TLS settings are
// kept. Without it (TLSConfig set by hand) that handshake fails.
func TestConfigureServer(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca := &localca.CA{Storage: st}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{slowIssuer{ca, 1500 * time.Millisecond}},
		Policy: policy.Allowlist("first.test", "plain.test")}
	t.Cleanup(func() { m.Close() })
	root, err := ca.Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	serve := func(configure func(*http.Server)) string {
		srv := &http.Server{ReadHeaderTimeout: 500 * time.Millisecond, IdleTimeout: time.Minute,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
		configure(srv)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.ServeTLS(ln, "", "")
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	dial := func(addr, name string) (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	}

	addr := serve(func(srv *http.Server) {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS13}
		m.ConfigureServer(srv)
	})
	start := time.Now()
	c, err := dial(addr, "first.test")
	if err != nil {
		t.Fatalf("first handshake for a new name through ConfigureServer, after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	defer c.Close()
	if st := c.ConnectionState(); st.PeerCertificates[0].DNSNames[0] != "first.test" || st.Version != tls.VersionTLS13 {
		t.Errorf("served %v over %s, want first.test over TLS 1.3 (the server's own MinVersion)", st.PeerCertificates[0].DNSNames, tls.VersionName(st.Version))
	}

	// The same server with TLSConfig set by hand cuts the handshake: the
	// test above would pass without ConfigureServer's deadline otherwise.
	plain := serve(func(srv *http.Server) { srv.TLSConfig = m.TLSConfig() })
	if c, err := dial(plain, "plain.test"); err == nil {
		c.Close()
		t.Fatal("first handshake with TLSConfig set by hand completed: the server's timeout did not bound it, so this test shows nothing")
	}
}
