package certfile

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
)

// ParseCSR parses a certificate signing request in PEM (or DER), checks
// its signature, and returns its DER with the names it asks for: its DNS
// names then its IP addresses, or, when it has neither, its subject's
// common name. A request that names nothing is an error: a CA would have
// nothing to validate. It is how `certkeeper cert issue --csr` reads the
// request of a key that stays with its owner.
func ParseCSR(data []byte) (der []byte, names []string, err error) {
	der = data
	if b, _ := pem.Decode(data); b != nil {
		der = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, fmt.Errorf("not a certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, fmt.Errorf("bad signature: %w", err)
	}
	names = slices.Clone(csr.DNSNames)
	for _, ip := range csr.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && csr.Subject.CommonName != "" {
		names = []string{csr.Subject.CommonName}
	}
	if len(names) == 0 {
		return nil, nil, errors.New("the request names no DNS name or IP address")
	}
	return der, names, nil
}

// ParseFirstCertificate returns the first certificate of PEM data (a
// chain file's leaf), skipping blocks of other types (a key kept in the
// same file).
func ParseFirstCertificate(data []byte) (*x509.Certificate, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
