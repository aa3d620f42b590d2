package acmeca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestCheckLeafRefusesWhatNoCAShouldSend: a delivered leaf that expired
// or starts beyond clockSkew, and a chain far larger than a chain is, are
// refused: a trial's CA sent an expired leaf, which was stored, served
// and renewed in a loop as a success, and a 10 MB chain of 20,000
// certificates, which was stored whole.
func TestCheckLeafRefusesWhatNoCAShouldSend(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr := &x509.CertificateRequest{PublicKey: key.Public()}
	now := time.Now()
	leaf := func(notBefore, notAfter time.Time) []byte {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"a.test"}, NotBefore: notBefore, NotAfter: notAfter}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	good := leaf(now.Add(-time.Hour), now.Add(90*24*time.Hour))
	for _, tt := range []struct {
		name, want string
		chain      []byte
	}{
		{"valid", "", good},
		{"a little ahead of this clock", "", leaf(now.Add(10*time.Minute), now.Add(90*24*time.Hour))},
		{"expired", "expired at", leaf(now.Add(-20*24*time.Hour), now.Add(-10*24*time.Hour))},
		{"not yet valid", "valid only from", leaf(now.Add(10*24*time.Hour), now.Add(100*24*time.Hour))},
		{"huge chain", "more than a chain has", bytes.Repeat(good, 20)},
	} {
		_, err := checkLeaf(tt.chain, csr, []string{"a.test"})
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: checkLeaf = %v, want %q", tt.name, err, tt.want)
		}
	}
}
