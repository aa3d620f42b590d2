package testsvc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SelfSignedFiles writes a self-signed ECDSA certificate for name, valid
// for a day, and its key to dir/NAME.pem and dir/NAME.key (0600), for a
// server such as nginx that needs a certificate of its own (a fallback,
// a backend's): its master process reads them as root.
func SelfSignedFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, _ := SelfSignedPEM(t, name, name)
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, []byte(certPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// SelfSignedPEM makes a self-signed ECDSA certificate with common name cn
// and dnsNames, valid from an hour ago for a day, and returns it and its
// key (PKCS #8) as PEM, and its expiry.
func SelfSignedPEM(t testing.TB, cn string, dnsNames ...string) (certPEM, keyPEM string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: dnsNames, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), tmpl.NotAfter
}
