package certfile_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/certfile"
)

func newCSR(t *testing.T, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseCSR(t *testing.T) {
	der := newCSR(t, &x509.CertificateRequest{DNSNames: []string{"a.test"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}})
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"PEM", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})},
		{"DER", der},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, names, err := certfile.ParseCSR(tc.data)
			if err != nil || !slices.Equal(got, der) || !slices.Equal(names, []string{"a.test", "192.0.2.1"}) {
				t.Errorf("ParseCSR = %d bytes, %q, %v; want the DER and [a.test 192.0.2.1]", len(got), names, err)
			}
		})
	}
	cn := newCSR(t, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "cn.test"}})
	if _, names, err := certfile.ParseCSR(cn); err != nil || !slices.Equal(names, []string{"cn.test"}) {
		t.Errorf("ParseCSR of a CN-only request = %q, %v; want [cn.test]", names, err)
	}
	if _, _, err := certfile.ParseCSR(newCSR(t, &x509.CertificateRequest{})); err == nil || !strings.Contains(err.Error(), "names no") {
		t.Errorf("ParseCSR of a request naming nothing = %v", err)
	}
	bad := slices.Clone(der)
	bad[len(bad)-5] ^= 0xff // in the signature
	if _, _, err := certfile.ParseCSR(bad); err == nil {
		t.Error("ParseCSR accepted a request with a bad signature")
	}
	if _, _, err := certfile.ParseCSR([]byte("junk")); err == nil || !strings.Contains(err.Error(), "not a certificate request") {
		t.Errorf("ParseCSR(junk) = %v", err)
	}
}

func TestParseFirstCertificate(t *testing.T) {
	if _, err := certfile.ParseFirstCertificate([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")); err == nil {
		t.Error("ParseFirstCertificate of a key alone succeeded")
	}
}

func TestParseFirstCertificateOfChain(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{"a.test"}}, &x509.Certificate{SerialNumber: big.NewInt(1)}, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	data := append([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	c, err := certfile.ParseFirstCertificate(data)
	if err != nil || c.SerialNumber.Int64() != 7 {
		t.Fatalf("ParseFirstCertificate = %v, %v; want serial 7", c, err)
	}
}
