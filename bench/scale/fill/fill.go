// Package fill writes many certificate records straight into a storage,
// as certkeeper would have stored them, for the scale benchmark
// (bench/scale) and the memory tests: ECDSA P-256 leaves under a
// two-certificate chain (leaf, intermediate) from a root made for the run.
// Issuing them through an ACME CA would take hours for 100,000 names.
package fill

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// CA is a root and an intermediate that sign the leaves.
type CA struct {
	Root    *x509.Certificate
	inter   *x509.Certificate
	interPE []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a root and an intermediate valid from an hour ago for a
// year.
func NewCA() (*CA, error) {
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "certkeeper fill root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}
	interKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "certkeeper fill intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	return &CA{Root: root, inter: inter, key: interKey,
		interPE: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER})}, nil
}

// RootPEM is the root in PEM, for clients.
func (ca *CA) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw})
}

// Record returns the stored form of a certificate for name from issuer
// issuerID, valid from notBefore to notAfter, with a new key.
func (ca *CA) Record(issuerID, name string, serial int64, notBefore, notAfter time.Time, onDemand bool) ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter, &k.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(k)
	if err != nil {
		return nil, err
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.interPE...)
	return storage.MarshalCertificate(&storage.Certificate{
		Names: []string{name}, Issuer: issuerID, ChainPEM: chain, KeyPEM: keyPEM,
		NotBefore: notBefore, NotAfter: notAfter, KeyType: "ecdsa-p256", OnDemand: onDemand, Obtained: notBefore,
	})
}

// Spec says what Fill stores.
type Spec struct {
	IssuerID  string    // issuer ID of the records (the Manager's issuer)
	Names     []string  // one certificate per name
	NotBefore time.Time // zero: an hour ago
	NotAfter  time.Time // zero: 90 days after NotBefore
	OnDemand  bool
}

// Fill stores one record per name of spec in st, on all cores.
func (ca *CA) Fill(ctx context.Context, st storage.Storage, spec Spec) error {
	nb, na := spec.NotBefore, spec.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = nb.Add(90 * 24 * time.Hour)
	}
	work := make(chan int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := ca.store(ctx, st, spec, i, nb, na); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range spec.Names {
		if ctx.Err() != nil || len(errs) > 0 {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

func (ca *CA) store(ctx context.Context, st storage.Storage, spec Spec, i int, nb, na time.Time) error {
	name := spec.Names[i]
	data, err := ca.Record(spec.IssuerID, name, int64(i)+100, nb, na, spec.OnDemand)
	if err != nil {
		return fmt.Errorf("making a certificate for %s: %w", name, err)
	}
	key, err := storage.CertificateKey(spec.IssuerID, name)
	if err != nil {
		return err
	}
	if err := st.Store(ctx, key, data); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}
