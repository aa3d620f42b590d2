// Package statusfill fills a directory storage with many certificate
// records quickly, for the scale tests of "certkeeper status" and the
// status page: one ECDSA P-256 leaf for *.scale.test under a
// two-certificate chain, stored under n names, written as files directly (no fsync per record, as a
// filestore's Store does). It is a test helper, not a way to issue.
package statusfill

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// Name is the primary name of record i.
func Name(i int) string { return fmt.Sprintf("n%06d.scale.test", i) }

// Fill writes n certificate records into the filestore directory dir,
// valid from an hour ago for 90 days, and marks the names of failing (by
// index) as failing renewals with error text errText.
func Fill(dir string, n int, failing []int, errText string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().Truncate(time.Second)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "statusfill CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "*.scale.test"},
		DNSNames: []string{"*.scale.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, key.Public(), caKey)
	if err != nil {
		return err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		return err
	}
	made := map[string]bool{}
	for i := range n {
		rec := &storage.Certificate{Names: []string{Name(i)}, Issuer: "local", ChainPEM: chain, KeyPEM: keyPEM,
			NotBefore: leafTmpl.NotBefore, NotAfter: leafTmpl.NotAfter, KeyType: "ecdsa-p256", OnDemand: true, Obtained: now}
		data, err := storage.MarshalCertificate(rec)
		if err != nil {
			return err
		}
		k, err := storage.CertificateKey("local", Name(i))
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(k))
		if d := filepath.Dir(p); !made[d] {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
			made[d] = true
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
	}
	failures := map[string]status.Failure{}
	for _, i := range failing {
		k, _ := storage.CertificateKey("local", Name(i))
		failures[k] = status.Failure{Names: []string{Name(i)}, Error: errText, At: now, RetryAt: now.Add(time.Hour), Attempt: 1}
	}
	data, err := json.Marshal(failures)
	if err != nil {
		return err
	}
	p := filepath.Join(dir, filepath.FromSlash(status.FailuresKey))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o600)
}
