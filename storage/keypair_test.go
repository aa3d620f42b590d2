package storage

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// TestPairedLeafAgreesWithX509KeyPair: the fast key-and-chain check of
// UnmarshalCertificateLeaf accepts a record exactly when tls.X509KeyPair
// accepts its chain and key, with the same leaf, for every key type and
// encoding a record may hold (the fast path takes only PKCS#8 keys and a
// certificate first; anything else goes to X509KeyPair itself).
func TestPairedLeafAgreesWithX509KeyPair(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ec384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafFor := func(k crypto.Signer) []byte {
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "a.test"},
			DNSNames: []string{"a.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	pkcs8 := func(k crypto.Signer) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	sec1, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	other := pem.EncodeToMemory(&pem.Block{Type: "OTHER", Bytes: []byte{1, 2, 3}})
	rsaLeaf, ecLeaf, ec384Leaf, edLeaf := leafFor(rsaKey), leafFor(ecKey), leafFor(ec384), leafFor(edKey)
	for _, tc := range []struct {
		name       string
		chain, key []byte
	}{
		{"ecdsa pkcs8", ecLeaf, pkcs8(ecKey)},
		{"ecdsa p384 pkcs8", ec384Leaf, pkcs8(ec384)},
		{"ecdsa sec1", ecLeaf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})},
		{"rsa pkcs8", rsaLeaf, pkcs8(rsaKey)},
		{"rsa pkcs1", rsaLeaf, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"ed25519 pkcs8", edLeaf, pkcs8(edKey)},
		{"chain after another block", append(other, ecLeaf...), pkcs8(ecKey)},
		{"key after another block", ecLeaf, append(other, pkcs8(ecKey)...)},
		{"intermediate after the leaf", append(ecLeaf, rsaLeaf...), pkcs8(ecKey)},
		{"ecdsa leaf, other ecdsa key", ecLeaf, pkcs8(ec384)},
		{"ecdsa leaf, rsa key", ecLeaf, pkcs8(rsaKey)},
		{"rsa leaf, ecdsa key", rsaLeaf, pkcs8(ecKey)},
		{"ed25519 leaf, ecdsa key", edLeaf, pkcs8(ecKey)},
		{"rsa pkcs8 labelled pkcs1", rsaLeaf, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: mustPKCS8(t, rsaKey)})},
		{"pkcs1 labelled pkcs8", rsaLeaf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})},
		{"key in the chain's place", pkcs8(ecKey), ecLeaf},
		{"no key", ecLeaf, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantErr := tls.X509KeyPair(tc.chain, tc.key)
			rec := &Certificate{Names: []string{"a.test"}, Issuer: "local", ChainPEM: tc.chain, KeyPEM: tc.key}
			if len(tc.key) == 0 {
				rec.KeyPEM = []byte("x") // MarshalCertificate wants one
			}
			data, err := MarshalCertificate(rec)
			if err != nil {
				t.Fatal(err)
			}
			_, leaf, err := UnmarshalCertificateLeaf("certificates/local/a.test.json", data)
			switch {
			case (err == nil) != (wantErr == nil):
				t.Fatalf("UnmarshalCertificateLeaf: %v; tls.X509KeyPair: %v", err, wantErr)
			case err == nil && !bytes.Equal(leaf.Raw, want.Leaf.Raw):
				t.Fatal("UnmarshalCertificateLeaf returned another leaf than tls.X509KeyPair")
			}
		})
	}
}

func mustPKCS8(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
