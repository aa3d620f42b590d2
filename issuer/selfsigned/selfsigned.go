// Package selfsigned makes self-signed server certificates: a certificate
// signed by its own key, trusted by nobody until a client pins it or is
// told to skip verification. It exists for tests, for a first start
// before any CA is reachable, and as the last resort of a fallback chain
// when serving something beats failing every handshake.
//
// A self-signed certificate must be signed by the certificate's own private
// key. A CSR carries only the public key, so Issuer.Issue, which gets only
// a CSR, cannot make one and always fails with ErrKeyRequired. Callers that
// hold the key use Certificate or Issuer.IssueWithKey. Signing with a key
// of the Issuer's own would make a certificate authority, not a
// self-signed certificate: that is package localca.
//
// What it does not do: it keeps no state, stores nothing and never renews;
// the caller owns the key and the result.
package selfsigned

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

const (
	issuerID        = "self-signed"
	defaultLifetime = 7 * 24 * time.Hour
	backdate        = time.Minute // tolerate clients whose clocks run behind
	organization    = "certkeeper self-signed"
)

// ErrKeyRequired is wrapped by every error of Issuer.Issue: a self-signed
// certificate is signed by its own private key, which a CSR does not carry.
var ErrKeyRequired = errors.New("a self-signed certificate needs its private key, not only a CSR")

// Issuer is the "self-signed" issuer. Its zero value is ready to use and it
// is safe for concurrent use.
type Issuer struct {
	// Lifetime is the validity of the certificates it makes. Zero (or
	// negative) means 7 days: short, so that a fallback certificate is
	// soon replaced by one from a real CA.
	Lifetime time.Duration
}

var _ issuer.Issuer = Issuer{}

// ID returns "self-signed".
func (Issuer) ID() string { return issuerID }

// Issue always fails with an *issuer.Error wrapping ErrKeyRequired: see the
// package documentation. A caller that holds the key uses IssueWithKey.
func (Issuer) Issue(_ context.Context, req issuer.Request) (*issuer.Certificate, error) {
	return nil, &issuer.Error{
		Issuer: issuerID,
		Names:  req.Names,
		Err:    fmt.Errorf("%w: use IssueWithKey", ErrKeyRequired),
	}
}

// IssueWithKey makes a certificate for req.Names signed by key. req.CSR is
// optional; if set, its signature must verify, its key must be key's
// public key and its names must be req.Names, as Issue would require of an
// issuer that signs CSRs. Failures are *issuer.Error.
func (s Issuer) IssueWithKey(ctx context.Context, key crypto.Signer, req issuer.Request) (*issuer.Certificate, error) {
	c, err := s.issueWithKey(ctx, key, req)
	if err != nil {
		return nil, &issuer.Error{Issuer: issuerID, Names: req.Names, Err: err}
	}
	return c, nil
}

func (s Issuer) issueWithKey(ctx context.Context, key crypto.Signer, req issuer.Request) (*issuer.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, errors.New("no key")
	}
	if req.CSR != nil {
		if err := checkCSR(req, key.Public()); err != nil {
			return nil, err
		}
	}
	der, err := create(key, req.Names, s.Lifetime)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing self-signed certificate: %w", err)
	}
	return &issuer.Certificate{
		ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Leaf:     leaf,
		Issuer:   issuerID,
	}, nil
}

// Certificate returns a PEM certificate for names signed by key itself,
// valid from a minute ago for lifetime (zero or negative: 7 days), for
// serverAuth. names must be normalised (hostname.Normalizer with AllowIP and
// AllowWildcard); IP literals become IP SANs. The "chain" is that one
// certificate.
func Certificate(key crypto.Signer, names []string, lifetime time.Duration) ([]byte, error) {
	if key == nil {
		return nil, fmt.Errorf("creating self-signed certificate for %s: no key", strings.Join(names, ", "))
	}
	der, err := create(key, names, lifetime)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// create returns the DER certificate.
func create(key crypto.Signer, names []string, lifetime time.Duration) ([]byte, error) {
	if lifetime <= 0 {
		lifetime = defaultLifetime
	}
	tmpl, err := template(names)
	if err != nil {
		return nil, fmt.Errorf("creating self-signed certificate for %s: %w", strings.Join(names, ", "), err)
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(lifetime)
	if _, ok := key.Public().(*rsa.PublicKey); ok {
		// TLS 1.2 RSA key exchange encrypts to the key (RFC 5246 §7.4.7.1).
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating self-signed certificate for %s: %w", strings.Join(names, ", "), err)
	}
	return der, nil
}

// template is a server certificate for names without validity dates.
func template(names []string) (*x509.Certificate, error) {
	if len(names) == 0 {
		return nil, errors.New("no names")
	}
	// 128 random bits, positive (RFC 5280 §4.1.2.2): 1 to 2^128-1.
	limit := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	serial, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("generating serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		// Subject is the Issuer of a self-signed certificate, which RFC
		// 5280 §4.1.2.4 requires to be non-empty: the Organization
		// keeps it so when there is no DNS name for the CN.
		Subject:               pkix.Name{Organization: []string{organization}},
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	nz := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	for _, n := range names {
		if got, err := nz.Normalize(n); err != nil {
			return nil, err
		} else if got != n {
			return nil, fmt.Errorf("name %q is not normalised (want %q)", n, got)
		}
		if a, err := netip.ParseAddr(n); err == nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, func(ip net.IP) bool { return ip.Equal(a.AsSlice()) }) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
			}
		} else if !slices.Contains(tmpl.DNSNames, n) {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	if len(tmpl.DNSNames) > 0 && len(tmpl.DNSNames[0]) <= 64 {
		tmpl.Subject.CommonName = tmpl.DNSNames[0]
	}
	return tmpl, nil
}

// checkCSR checks req.CSR against the key and names IssueWithKey was
// given.
func checkCSR(req issuer.Request, pub crypto.PublicKey) error {
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return fmt.Errorf("parsing CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return fmt.Errorf("checking CSR signature: %w", err)
	}
	if p, ok := pub.(interface{ Equal(crypto.PublicKey) bool }); !ok || !p.Equal(csr.PublicKey) {
		return errors.New("CSR key is not the given key")
	}
	got := slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			got = append(got, a.Unmap().String())
		}
	}
	got = slices.Compact(slices.Sorted(slices.Values(got)))
	want := slices.Compact(slices.Sorted(slices.Values(req.Names)))
	if !slices.Equal(got, want) {
		return fmt.Errorf("CSR names %s differ from requested %s", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	return nil
}

// KeyPair makes a new key of type kt (zero: ECDSA P-256) and a
// self-signed certificate for names with it (Certificate), and returns
// both in PEM: the certificate, and the key as storage keeps keys
// (storage.MarshalPrivateKeyPEM). It is what to serve where nothing
// trusts the certificate: a web server's fallback for names with no
// certificate, tests, first starts.
func KeyPair(kt issuer.KeyType, names []string, lifetime time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := kt.Generate()
	if err != nil {
		return nil, nil, fmt.Errorf("generating %s key: %w", kt, err)
	}
	if certPEM, err = Certificate(key, names, lifetime); err != nil {
		return nil, nil, err
	}
	if keyPEM, err = storage.MarshalPrivateKeyPEM(key); err != nil {
		return nil, nil, err
	}
	return certPEM, keyPEM, nil
}
