package storage

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a self-signed certificate for names and its key.
func selfSigned(t testing.TB, names ...string) (chainPEM []byte, key crypto.Signer) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k
}

// testCertificate returns a complete record for a.test.
func testCertificate(t testing.TB) *Certificate {
	t.Helper()
	chain, key := selfSigned(t, "a.test", "www.a.test")
	keyPEM, err := MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &Certificate{
		Names:    []string{"a.test", "www.a.test"},
		Issuer:   le,
		ChainPEM: chain,
		KeyPEM:   keyPEM,
		KeyType:  "ecdsa-p256",
		Profile:  "tlsserver",
		URL:      "https://ca.test/cert/1",
		Account:  "https://ca.test/acct/1",
		Email:    "ops@a.test",
		Obtained: time.Now().UTC().Truncate(time.Second),
		Meta:     json.RawMessage(`{"ari":"window"}`),
	}
	leaf, err := c.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	c.NotBefore, c.NotAfter = leaf.NotBefore, leaf.NotAfter
	return c
}

// compact is data without insignificant space: MarshalCertificate indents
// Meta along with the rest.
func compact(t *testing.T, data []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCertificateRoundTrip(t *testing.T) {
	c := testCertificate(t)
	data, err := MarshalCertificate(c)
	if err != nil {
		t.Fatalf("MarshalCertificate = %v", err)
	}
	skey, err := CertificateKey(c.Issuer, c.Names[0])
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalCertificate(skey, data)
	if err != nil {
		t.Fatalf("UnmarshalCertificate = %v", err)
	}
	if !slices.Equal(got.Names, c.Names) || got.Issuer != c.Issuer || !bytes.Equal(got.ChainPEM, c.ChainPEM) ||
		!bytes.Equal(got.KeyPEM, c.KeyPEM) || !got.NotBefore.Equal(c.NotBefore) || !got.NotAfter.Equal(c.NotAfter) ||
		got.KeyType != c.KeyType || got.Profile != c.Profile || got.URL != c.URL || got.Account != c.Account ||
		got.Email != c.Email || !got.Obtained.Equal(c.Obtained) || compact(t, got.Meta) != compact(t, c.Meta) {
		t.Errorf("UnmarshalCertificate(MarshalCertificate(c)) = %#v\nwant %#v", *got, *c) // GoString hides keys
	}

	tc, err := got.TLSCertificate()
	if err != nil {
		t.Fatalf("TLSCertificate = %v", err)
	}
	if tc.Leaf == nil || !slices.Equal(tc.Leaf.DNSNames, c.Names) {
		t.Errorf("TLSCertificate().Leaf = %v, want the leaf for %v", tc.Leaf, c.Names)
	}
	key, err := got.PrivateKey()
	if err != nil {
		t.Fatalf("PrivateKey = %v", err)
	}
	leaf, err := got.Leaf()
	if err != nil {
		t.Fatalf("Leaf = %v", err)
	}
	if pub, ok := key.Public().(*ecdsa.PublicKey); !ok || !pub.Equal(leaf.PublicKey) {
		t.Error("PrivateKey does not match the leaf")
	}
}

func TestCertificateDamaged(t *testing.T) {
	c := testCertificate(t)
	other, otherKey := selfSigned(t, "b.test")
	otherKeyPEM, err := MarshalPrivateKeyPEM(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		change func(c *Certificate)
	}{
		{"mismatched key", func(c *Certificate) { c.KeyPEM = otherKeyPEM }},
		{"mismatched chain", func(c *Certificate) { c.ChainPEM = other }},
		{"truncated chain", func(c *Certificate) { c.ChainPEM = c.ChainPEM[:len(c.ChainPEM)/2] }},
		{"garbage key", func(c *Certificate) {
			c.KeyPEM = []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := *c
			tt.change(&d)
			data, err := MarshalCertificate(&d)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := UnmarshalCertificate("certificates/"+le+"/a.test.json", data); err == nil {
				t.Errorf("UnmarshalCertificate of a record with a %s = %v, nil; want an error", tt.name, got)
			}
		})
	}
	for _, data := range []string{"", "{", "null", `{"chain_pem":"bm9wZQ=="}`, "[]"} {
		if got, err := UnmarshalCertificate("certificates/"+le+"/a.test.json", []byte(data)); err == nil {
			t.Errorf("UnmarshalCertificate(%q) = %v, nil; want an error", data, got)
		}
	}
	for _, d := range []Certificate{{KeyPEM: c.KeyPEM}, {ChainPEM: c.ChainPEM}, {ChainPEM: c.ChainPEM, KeyPEM: c.KeyPEM, Meta: json.RawMessage("{")}} {
		if _, err := MarshalCertificate(&d); err == nil {
			t.Errorf("MarshalCertificate of an incomplete or invalid record = nil error, want one")
		}
	}
	if _, err := (&Certificate{ChainPEM: []byte("nope")}).Leaf(); err == nil {
		t.Error("Leaf of a chain without PEM = nil error, want one")
	}
}

// TestCertificateRedacted checks that no way of logging or printing a
// Certificate shows its private key.
func TestCertificateRedacted(t *testing.T) {
	c := testCertificate(t)
	block, _ := pem.Decode(c.KeyPEM)
	secrets := []string{
		string(c.KeyPEM),
		"PRIVATE KEY",
		fmt.Sprintf("%x", block.Bytes[8:24]),
		strings.Split(string(c.KeyPEM), "\n")[1], // a line of base64
	}
	var outputs []string
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		for _, attr := range []slog.Attr{slog.Any("cert", c), slog.Any("cert", *c), slog.Any("certs", []*Certificate{c})} {
			var b bytes.Buffer
			slog.New(h(&b)).Info("stored", attr)
			outputs = append(outputs, b.String())
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, *c))
	}
	for _, out := range outputs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("output shows the private key (%.30q):\n%s", s, out)
			}
		}
	}
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("stored", slog.Any("cert", c))
	for _, want := range []string{`"key":"REDACTED"`, `"names":["a.test","www.a.test"]`, `"issuer":"` + le + `"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log line %s lacks %s", b.String(), want)
		}
	}
}

func TestPrivateKeyPEM(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := MarshalPrivateKeyPEM(ec)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		pem  []byte
		want crypto.PublicKey
	}{
		{"PKCS#8 EC", pkcs8, ec.Public()},
		{"SEC 1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ec.Public()},
		{"PKCS#1", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), rsaKey.Public()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePrivateKeyPEM(tt.pem)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM = %v", err)
			}
			if pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(tt.want) {
				t.Errorf("ParsePrivateKeyPEM returned a different key")
			}
		})
	}
	for _, bad := range []string{"", "not PEM", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParsePrivateKeyPEM([]byte(bad)); err == nil {
			t.Errorf("ParsePrivateKeyPEM(%q) = nil error, want one", bad)
		}
	}
}

// TestUnmarshalCertificateTLS: the certificate built from the parts the
// checks parsed is what tls.X509KeyPair makes of the record (the whole
// chain, the key, the leaf), for the fast path (PKCS#8) and the fallback
// (a SEC 1 "EC PRIVATE KEY", and blocks X509KeyPair skips), and its leaf
// shares the chain's first certificate rather than holding a copy.
func TestUnmarshalCertificateTLS(t *testing.T) {
	base := testCertificate(t)
	second, _ := selfSigned(t, "intermediate.test") // stands in for the issuer's certificate
	ecKey, err := x509.MarshalECPrivateKey(mustKey(t, base).(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(c *Certificate){
		"leaf only":             func(c *Certificate) {},
		"leaf and intermediate": func(c *Certificate) { c.ChainPEM = append(slices.Clone(c.ChainPEM), second...) },
		"other blocks skipped": func(c *Certificate) {
			c.ChainPEM = slices.Concat(c.ChainPEM, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{1}}), second)
		},
		"SEC 1 key (fallback)": func(c *Certificate) {
			c.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecKey})
			c.ChainPEM = append(slices.Clone(c.ChainPEM), second...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := *base
			mutate(&c)
			data, err := MarshalCertificate(&c)
			if err != nil {
				t.Fatal(err)
			}
			skey, _ := CertificateKey(c.Issuer, c.Names[0])
			rec, got, err := UnmarshalCertificateTLS(skey, data)
			if err != nil {
				t.Fatalf("UnmarshalCertificateTLS = %v", err)
			}
			want, err := rec.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got.Certificate, want.Certificate, bytes.Equal) {
				t.Errorf("chain of %d certificates, want X509KeyPair's %d", len(got.Certificate), len(want.Certificate))
			}
			if got.Leaf == nil || !got.Leaf.Equal(want.Leaf) {
				t.Error("Leaf differs from X509KeyPair's")
			}
			if k, ok := got.PrivateKey.(*ecdsa.PrivateKey); !ok || !k.Equal(want.PrivateKey) {
				t.Errorf("PrivateKey %T differs from X509KeyPair's", got.PrivateKey)
			}
			if name != "SEC 1 key (fallback)" && &got.Leaf.Raw[0] != &got.Certificate[0][0] {
				t.Error("the leaf holds a copy of the chain's first certificate")
			}
		})
	}
}

func mustKey(t *testing.T, c *Certificate) crypto.Signer {
	t.Helper()
	k, err := c.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// BenchmarkLoadRecord is what loading a stored certificate costs: the
// record parsed once into a servable certificate (UnmarshalCertificateTLS),
// against the baseline of parsing it to check it and again to serve it
// (UnmarshalCertificate, then TLSCertificate), as loads did before.
func BenchmarkLoadRecord(b *testing.B) {
	c := testCertificate(b)
	second, _ := selfSigned(b, "intermediate.test")
	c.ChainPEM = append(c.ChainPEM, second...)
	data, err := MarshalCertificate(c)
	if err != nil {
		b.Fatal(err)
	}
	skey, _ := CertificateKey(c.Issuer, c.Names[0])
	b.Run("once", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := UnmarshalCertificateTLS(skey, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-twice", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec, err := UnmarshalCertificate(skey, data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := rec.TLSCertificate(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
