package storage

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// recordFor returns a record for names whose leaf covers leafNames (DNS
// names, wildcards or IP literals), as a CA would have issued it.
func recordFor(t testing.TB, names []string, leafNames ...string) *Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "record test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range leafNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return &Certificate{
		Names: names, Issuer: "local", KeyPEM: keyPEM,
		ChainPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Obtained: now,
	}
}

// TestUnmarshalCertificateNames: a record is accepted only with names, the
// name its storage key was built from among them, and a leaf that covers
// every one of them (as a TLS client checks: wildcards, IP addresses). A
// record that names nothing, or names what its leaf does not cover, is
// refused with an error naming the key: it must never reach the code that
// serves, renews or lists certificates by Names[0].
func TestUnmarshalCertificateNames(t *testing.T) {
	label := strings.Repeat("a", 63)
	long := label + "." + label + "." + label + "." + strings.Repeat("b", 56) + ".test" // 253 bytes: a hashed key segment
	key := func(name, variant string) string {
		t.Helper()
		k, err := CertificateKeyVariant("local", name, variant)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tt := range []struct {
		name    string
		key     string
		names   []string
		leaf    []string
		variant string
		bad     string // "" if the record is valid; else what the error says
	}{
		{"primary name", key("a.test", ""), []string{"a.test", "www.a.test"}, []string{"a.test", "www.a.test"}, "", ""},
		{"second name", key("www.a.test", ""), []string{"a.test", "www.a.test"}, []string{"a.test", "www.a.test"}, "", ""},
		{"wildcard", key("*.w.test", ""), []string{"*.w.test", "w.test"}, []string{"*.w.test", "w.test"}, "", ""},
		{"name under a wildcard leaf", key("x.w.test", ""), []string{"x.w.test"}, []string{"*.w.test"}, "", ""},
		{"IPv4", key("192.0.2.7", ""), []string{"192.0.2.7"}, []string{"192.0.2.7"}, "", ""},
		{"IPv6", key("2001:db8::1", ""), []string{"2001:db8::1"}, []string{"2001:db8::1"}, "", ""},
		{"long name", key(long, ""), []string{long}, []string{long}, "", ""},
		{"variant", key("a.test", "rsa"), []string{"a.test"}, []string{"a.test"}, "rsa", ""},

		{"no names", key("a.test", ""), []string{}, []string{"a.test"}, "", "no names"},
		{"null names", key("a.test", ""), nil, []string{"a.test"}, "", "no names"},
		{"empty name", key("a.test", ""), []string{"a.test", ""}, []string{"a.test"}, "", "does not cover"},
		{"key of another name", key("b.test", ""), []string{"a.test"}, []string{"a.test", "b.test"}, "", "not among"},
		{"key of another variant", key("a.test", "rsa"), []string{"a.test"}, []string{"a.test"}, "", "not among"},
		{"not a certificate key", "accounts/local/a.test.json", []string{"a.test"}, []string{"a.test"}, "", "not among"},
		{"leaf lacks a name", key("a.test", ""), []string{"a.test", "evil.test"}, []string{"a.test"}, "", `does not cover "evil.test"`},
		{"leaf lacks the key's name", key("evil.test", ""), []string{"evil.test"}, []string{"a.test"}, "", `does not cover "evil.test"`},
		{"two labels under a wildcard", key("x.y.w.test", ""), []string{"x.y.w.test"}, []string{"*.w.test"}, "", "does not cover"},
		{"wildcard name, plain leaf", key("*.w.test", ""), []string{"*.w.test"}, []string{"x.w.test"}, "", "does not cover"},
		{"other IP", key("192.0.2.8", ""), []string{"192.0.2.8"}, []string{"192.0.2.7"}, "", "does not cover"},
		{"IP name, DNS leaf", key("192.0.2.7", ""), []string{"192.0.2.7"}, []string{"192.0.2.7.nip.test"}, "", "does not cover"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := recordFor(t, tt.names, tt.leaf...)
			rec.Variant = tt.variant
			data, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalCertificate(tt.key, data)
			if tt.bad == "" {
				if err != nil {
					t.Fatalf("UnmarshalCertificate(%q, record for %q) = %v, want it accepted", tt.key, tt.names, err)
				}
				if len(got.Names) == 0 {
					t.Fatalf("UnmarshalCertificate(%q) accepted a record without names", tt.key)
				}
				return
			}
			if err == nil {
				t.Fatalf("UnmarshalCertificate(%q, record for %q, leaf for %q) = nil error, want one saying %q",
					tt.key, tt.names, tt.leaf, tt.bad)
			}
			if !strings.Contains(err.Error(), tt.bad) || !strings.Contains(err.Error(), tt.key) || !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("UnmarshalCertificate(%q) error = %q, want ErrInvalidRecord naming the key and saying %q", tt.key, err, tt.bad)
			}
		})
	}
}
