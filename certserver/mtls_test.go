package certserver_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// newCert makes a certificate for cn signed by parent (self-signed when
// parent is nil).
func newCert(t *testing.T, cn string, isCA bool, parent *tls.Certificate) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	signer, signKey := tmpl, any(key)
	if parent != nil {
		signer, signKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// TestClientCertificate: over HTTPS, a client certificate from the
// trusted CA authenticates (the audit line names its subject); one from
// another CA or none gets no key.
func TestClientCertificate(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	audit := &testsvc.Buffer{}
	if err := m.Cert(t.Context(), "b.test"); err != nil {
		t.Fatal(err)
	}
	const scoped = "scoped-token-0123456789 names=b.test"
	s := httptest.NewUnstartedServer(&certserver.Handler{Manager: m, Audit: slog.New(slog.NewJSONHandler(audit, nil)),
		Tokens: []string{scoped}})
	clientCA := newCert(t, "fleet CA", true, nil)
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.Leaf)
	s.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	s.StartTLS()
	t.Cleanup(s.Close)

	client := func(cert *tls.Certificate) *http.Client {
		c := s.Client()
		tr := c.Transport.(*http.Transport).Clone()
		if cert != nil {
			tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
		}
		c.Transport = tr
		return c
	}
	fetchAs := func(c *http.Client, name, token string) (int, []byte, error) {
		req, err := http.NewRequest(http.MethodGet, s.URL+"/v1/certificates/"+name, nil)
		if err != nil {
			return 0, nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body, nil
	}
	fetch := func(c *http.Client) (int, []byte, error) { return fetchAs(c, "a.test", "") }
	web1 := newCert(t, "web1", false, clientCA)
	if code, body, err := fetch(client(web1)); err != nil || code != http.StatusOK {
		t.Fatalf("trusted client certificate: %d %s %v, want 200", code, body, err)
	} else if err := json.Unmarshal(body, &certserver.Certificate{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(audit.String(), `"who":"cert CN=web1 serial `+web1.Leaf.SerialNumber.Text(16)+`"`) {
		t.Errorf("audit log does not name the client certificate:\n%s", audit)
	}
	// Go's client does not even send a certificate the server's CA list
	// excludes; either way, no key.
	if code, _, err := fetch(client(newCert(t, "intruder", false, newCert(t, "other CA", true, nil)))); err == nil && code != http.StatusUnauthorized {
		t.Errorf("client certificate from another CA: %d, want 401 or a failed handshake", code)
	}
	if code, _, err := fetch(client(nil)); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no client certificate: %d %v, want 401", code, err)
	}
	// A certificate with a token is the token's scope, and a token that
	// does not match refuses it: a security trial's pool with a scoped
	// token and a certificate fetched every key, revoked token or not.
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"b.test", "scoped-token-0123456789", http.StatusOK},
		{"a.test", "scoped-token-0123456789", http.StatusForbidden},
		{"a.test", "revoked-token-0123456789", http.StatusUnauthorized},
	} {
		if code, body, err := fetchAs(client(web1), tt.name, tt.token); err != nil || code != tt.want {
			t.Errorf("certificate with token %s for %s: %d %s %v, want %d", tt.token, tt.name, code, body, err, tt.want)
		}
	}
	if !strings.Contains(audit.String(), `"who":"cert CN=web1 serial `+web1.Leaf.SerialNumber.Text(16)+` with token 1"`) {
		t.Errorf("audit log does not name the certificate and the token:\n%s", audit)
	}
}
