package selfsigned

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

func TestCertificate(t *testing.T) {
	tests := []struct {
		name     string
		kt       issuer.KeyType
		names    []string
		lifetime time.Duration
		want     time.Duration
	}{
		{"dns", issuer.ECDSAP256, []string{"a.test"}, 0, 7 * 24 * time.Hour},
		{"localhost and IPs", issuer.ECDSAP256, []string{"localhost", "127.0.0.1", "::1"}, time.Hour, time.Hour},
		{"IP only", issuer.ECDSAP384, []string{"127.0.0.1"}, 0, 7 * 24 * time.Hour},
		{"wildcard", issuer.ECDSAP256, []string{"*.a.test", "a.test"}, 0, 7 * 24 * time.Hour},
		{"rsa", issuer.RSA2048, []string{"a.test"}, 90 * 24 * time.Hour, 90 * 24 * time.Hour},
		{"duplicates", issuer.ECDSAP256, []string{"a.test", "a.test", "::1", "::1"}, -time.Hour, 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := tt.kt.Generate()
			if err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			chain, err := Certificate(key, tt.names, tt.lifetime)
			after := time.Now()
			if err != nil {
				t.Fatalf("Certificate(%q) = %v", tt.names, err)
			}
			leaf := parseOne(t, chain)
			checkSelfSigned(t, leaf, tt.names)
			if got := leaf.NotAfter.Sub(before); got < tt.want-time.Second || got > tt.want+time.Minute {
				t.Errorf("Certificate(%q, %v): valid for %v from now, want %v", tt.names, tt.lifetime, got, tt.want)
			}
			if leaf.NotBefore.After(after.Add(-time.Minute)) {
				t.Errorf("NotBefore = %v, want a minute before %v", leaf.NotBefore, after)
			}
			if n := len(leaf.DNSNames) + len(leaf.IPAddresses); n != len(slices.Compact(slices.Clone(tt.names))) {
				t.Errorf("certificate has %d names, want %d", n, len(slices.Compact(slices.Clone(tt.names))))
			}
			keyPEM, err := storage.MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tls.X509KeyPair(chain, keyPEM); err != nil {
				t.Errorf("tls.X509KeyPair = %v", err)
			}
		})
	}
}

func parseOne(t *testing.T, chainPEM []byte) *x509.Certificate {
	t.Helper()
	b, rest := pem.Decode(chainPEM)
	if b == nil || len(rest) != 0 {
		t.Fatalf("chain is not one PEM certificate: %q", chainPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkSelfSigned checks that leaf is signed by its own key, names its
// subject as its issuer, and verifies for each name when trusted itself.
func checkSelfSigned(t *testing.T, leaf *x509.Certificate, names []string) {
	t.Helper()
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		t.Errorf("signature does not verify with the certificate's own key: %v", err)
	}
	if string(leaf.RawIssuer) != string(leaf.RawSubject) || leaf.Subject.String() == "" {
		t.Errorf("issuer %q, subject %q: want equal and non-empty", leaf.Issuer, leaf.Subject)
	}
	if leaf.IsCA || !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("IsCA = %v, ExtKeyUsage = %v, want false, [serverAuth]", leaf.IsCA, leaf.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, n := range names {
		host := n
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			host = "x." + rest
		}
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("Verify(%q) = %v, want nil", host, err)
		}
	}
}

func TestCertificateRejects(t *testing.T) {
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		names []string
		want  string
	}{
		{"no names", nil, "no names"},
		{"not normalised", []string{"A.TEST"}, "not normalised"},
		{"invalid", []string{"a..test"}, "empty label"},
		{"mixed", []string{"a.test", "a_b.test"}, "a_b.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := Certificate(key, tt.names, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Certificate(%q) = %.20q, %v, want an error containing %q", tt.names, got, err, tt.want)
			}
		})
	}
	if _, err := Certificate(nil, []string{"a.test"}, 0); err == nil {
		t.Errorf("Certificate(nil key) = nil error, want one")
	}
}

func TestIssue(t *testing.T) {
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, []string{"a.test"})
	if err != nil {
		t.Fatal(err)
	}
	var is issuer.Issuer = Issuer{}
	_, err = is.Issue(t.Context(), issuer.Request{Names: []string{"a.test"}, CSR: csr})
	var ie *issuer.Error
	if !errors.As(err, &ie) || ie.Issuer != "self-signed" || !errors.Is(err, ErrKeyRequired) {
		t.Errorf("Issue = %v, want an *issuer.Error from self-signed wrapping ErrKeyRequired", err)
	}
	if is.ID() != "self-signed" {
		t.Errorf("ID() = %q, want self-signed", is.ID())
	}
}

func TestIssueWithKey(t *testing.T) {
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr := func(signer crypto.Signer, names ...string) []byte {
		t.Helper()
		der, err := issuer.NewCSR(signer, names)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		req  issuer.Request
		want string // "" for success
	}{
		{"no CSR", t.Context(), issuer.Request{Names: []string{"a.test", "127.0.0.1"}}, ""},
		{"matching CSR", t.Context(), issuer.Request{Names: []string{"a.test", "::1"}, CSR: csr(key, "a.test", "::1")}, ""},
		{"CSR of another key", t.Context(), issuer.Request{Names: []string{"a.test"}, CSR: csr(other, "a.test")}, "not the given key"},
		{"CSR for other names", t.Context(), issuer.Request{Names: []string{"a.test"}, CSR: csr(key, "b.test")}, "differ"},
		{"garbage CSR", t.Context(), issuer.Request{Names: []string{"a.test"}, CSR: []byte("x")}, "parsing CSR"},
		{"canceled", canceled, issuer.Request{Names: []string{"a.test"}}, "canceled"},
	}
	s := Issuer{Lifetime: time.Hour}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.IssueWithKey(tt.ctx, key, tt.req)
			if tt.want != "" {
				var ie *issuer.Error
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("IssueWithKey(%q) = %v, want an *issuer.Error containing %q", tt.req.Names, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("IssueWithKey(%q) = %v", tt.req.Names, err)
			}
			if c.Issuer != "self-signed" || !c.Leaf.Equal(parseOne(t, c.ChainPEM)) {
				t.Errorf("IssueWithKey: Issuer %q, Leaf not the chain's certificate", c.Issuer)
			}
			checkSelfSigned(t, c.Leaf, tt.req.Names)
			if d := c.Leaf.NotAfter.Sub(c.Leaf.NotBefore); d != time.Hour+time.Minute {
				t.Errorf("leaf valid for %v, want %v", d, time.Hour+time.Minute)
			}
		})
	}
}

// TestKeyPair: the certificate and key KeyPair returns form a pair
// crypto/tls accepts, for the names given.
func TestKeyPair(t *testing.T) {
	for _, kt := range []issuer.KeyType{"", issuer.RSA2048} {
		certPEM, keyPEM, err := KeyPair(kt, []string{"fallback.invalid", "127.0.0.1"}, 48*time.Hour)
		if err != nil {
			t.Fatalf("KeyPair(%q) = %v", kt, err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatalf("KeyPair(%q): tls.X509KeyPair = %v", kt, err)
		}
		leaf := pair.Leaf
		if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "fallback.invalid" || len(leaf.IPAddresses) != 1 {
			t.Errorf("KeyPair(%q): names %v %v", kt, leaf.DNSNames, leaf.IPAddresses)
		}
		if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 48*time.Hour || d > 49*time.Hour {
			t.Errorf("KeyPair(%q): valid for %s, want 48h", kt, d)
		}
	}
	if _, _, err := KeyPair("dsa", []string{"a.test"}, time.Hour); err == nil {
		t.Error("KeyPair(dsa) = nil error")
	}
}
