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
	s := httptest.NewUnstartedServer(&certserver.Handler{Manager: m, Audit: slog.New(slog.NewJSONHandler(audit, nil))})
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
	fetch := func(c *http.Client) (int, []byte, error) {
		resp, err := c.Get(s.URL + "/v1/certificates/a.test")
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body, nil
	}
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
}
