package storage

import (
	"context"
	"crypto/x509"
	"slices"
	"time"
)

// CurrentLeaf returns the leaf of the certificate st holds from issuerID
// for exactly names (same names, same order), if it has not expired; nil
// otherwise, whatever the reason (absent, unreadable, other names). A new
// order names it as the certificate it replaces (ACME ARI, RFC 9773), so
// that the CA may lift rate limits for the replacement.
func CurrentLeaf(ctx context.Context, st Storage, issuerID string, names []string) *x509.Certificate {
	if len(names) == 0 {
		return nil
	}
	key, err := CertificateKey(issuerID, names[0])
	if err != nil {
		return nil
	}
	data, err := st.Load(ctx, key)
	if err != nil {
		return nil
	}
	rec, err := UnmarshalCertificate(key, data)
	if err != nil || !slices.Equal(rec.Names, names) {
		return nil
	}
	leaf, err := rec.Leaf()
	if err != nil || time.Now().After(leaf.NotAfter) {
		return nil
	}
	return leaf
}
