package localca

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer"
)

// Issue signs a leaf certificate for req.CSR with the intermediate,
// creating the CA on first use. The CSR's signature must verify and its
// names (DNS and IP SANs, and the common name if set) must be exactly
// req.Names, which must be normalised (hostname.Normalizer with AllowIP and
// AllowWildcard). The leaf is valid from a minute ago for Lifetime, but
// never past the intermediate, for serverAuth only, with a random 128-bit
// serial. ChainPEM is the leaf and the intermediate; the root is left out,
// as clients must already hold it. Failures are *issuer.Error.
func (ca *CA) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	c, err := ca.issue(ctx, req)
	if err != nil {
		return nil, &issuer.Error{Issuer: issuerID, Names: req.Names, Err: err}
	}
	return c, nil
}

func (ca *CA) issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	csr, err := checkCSR(req)
	if err != nil {
		return nil, err
	}
	a, err := ca.authority(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl, err := leafTemplate(req.Names, csr, now)
	if err != nil {
		return nil, err
	}
	// Backdating tolerates clients whose clocks run behind, but for a
	// short-lived certificate it must stay a small part of the lifetime,
	// or renewal timing (a fraction of NotAfter-NotBefore) would be off.
	tmpl.NotBefore = now.Add(-min(backdate, ca.lifetime()/10))
	tmpl.NotAfter = now.Add(ca.lifetime())
	if ca.OCSPURL != "" {
		tmpl.OCSPServer = []string{ca.OCSPURL}
	}
	if tmpl.NotAfter.After(a.inter.NotAfter) {
		tmpl.NotAfter = a.inter.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.inter, csr.PublicKey, a.interKey)
	if err != nil {
		return nil, fmt.Errorf("signing certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing signed certificate: %w", err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, a.interPEM...)
	if req.Progress != nil {
		req.Progress("signed by " + a.inter.Subject.CommonName)
	}
	return &issuer.Certificate{ChainPEM: chain, Leaf: leaf, Issuer: issuerID}, nil
}

// checkCSR parses req.CSR, verifies its signature and key, and checks that
// it asks for exactly req.Names.
func checkCSR(req issuer.Request) (*x509.CertificateRequest, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names requested")
	}
	nz := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	for _, n := range req.Names {
		if got, err := nz.Normalize(n); err != nil {
			return nil, err
		} else if got != n {
			return nil, fmt.Errorf("name %q is not normalised (want %q)", n, got)
		}
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, fmt.Errorf("parsing CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("checking CSR signature: %w", err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return nil, errors.New("CSR asks for email or URI names, which this CA does not issue")
	}
	got := csrNames(csr)
	want := slices.Compact(slices.Sorted(slices.Values(req.Names)))
	if !slices.Equal(got, want) {
		return nil, fmt.Errorf("CSR names %s differ from requested %s",
			strings.Join(got, ", "), strings.Join(want, ", "))
	}
	if cn := csr.Subject.CommonName; cn != "" && !slices.Contains(want, cn) {
		return nil, fmt.Errorf("CSR common name %q is not a requested name", cn)
	}
	return csr, nil
}

// csrNames returns the CSR's DNS and IP SANs, IPs in netip canonical form,
// sorted and without duplicates.
func csrNames(csr *x509.CertificateRequest) []string {
	names := slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			names = append(names, a.Unmap().String())
		} else {
			names = append(names, ip.String())
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(names)))
}

// checkKey refuses keys no client should be asked to trust.
func checkKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("CSR key on curve %s is not accepted", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("CSR RSA key of %d bits is too short (minimum 2048)", k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("CSR key of type %T is not accepted", pub)
}

// leafTemplate is a server certificate for names (deduplicated, in request
// order) and the CSR's key. NotAfter is left to the caller.
func leafTemplate(names []string, csr *x509.CertificateRequest, now time.Time) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-backdate),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if _, ok := csr.PublicKey.(*rsa.PublicKey); ok {
		// TLS 1.2 RSA key exchange encrypts to the key (RFC 5246 §7.4.7.1).
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		if a, err := netip.ParseAddr(n); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	// Clients take names from the SANs (RFC 6125 §6.4.4); a common name
	// helps people reading the certificate. An IP is not a common name.
	if len(tmpl.DNSNames) > 0 && len(tmpl.DNSNames[0]) <= 64 {
		tmpl.Subject = pkix.Name{CommonName: tmpl.DNSNames[0]}
	}
	return tmpl, nil
}
