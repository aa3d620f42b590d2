package certkeeper

import (
	"bytes"
	"context"
	"crypto/x509"

	"github.com/certkeeper/certkeeper/stapling"
)

// keepStaple has the OCSP staple of e's certificate kept fresh in the
// background (package stapling), when the certificate names a responder:
// each new verified staple is published as a copy of the certificate with
// OCSPStaple set, swapped in like a renewal, so handshakes read it without
// a lock. A certificate without a responder — every Let's Encrypt
// certificate since 2025 — costs one check here and nothing afterwards.
//
// The staple belongs to this entry's certificate only: a renewal
// publishes a new entry, without a staple, whose own is fetched for its
// own fingerprint.
//
// A staple already in storage is set before it returns, so a certificate
// loaded after a restart is stapled from its first handshake on.
func (m *Manager) keepStaple(ctx context.Context, e *managed, c *certCache) {
	tc := e.cert.Load()
	if !stapling.HasOCSP(tc.Leaf) || len(tc.Certificate) < 2 {
		return
	}
	issuer, err := x509.ParseCertificate(tc.Certificate[1])
	if err != nil {
		m.logger().Warn("not stapling OCSP: the chain's issuer does not parse", "names", e.names, "err", err)
		return
	}
	if r := m.staples.Stored(ctx, tc.Leaf, issuer); r != nil {
		m.setStaple(e, c, r.Raw)
	}
	m.staples.Keep(tc.Leaf, issuer, func(der []byte) bool { return m.setStaple(e, c, der) })
}

// setStaple publishes e's certificate with staple der (nil: none). It
// reports false once e is no longer served (evicted, replaced by a
// renewal, or the Manager closed), which ends the keeping of its staple.
func (m *Manager) setStaple(e *managed, c *certCache, der []byte) bool {
	if m.ctx.Err() != nil || c.get(e.names[0]) != e {
		return false
	}
	for {
		cur := e.cert.Load()
		if bytes.Equal(cur.OCSPStaple, der) {
			return true
		}
		// A published certificate is never modified (crypto/tls: it
		// "should not be modified"): a copy carries the new staple.
		next := *cur
		next.OCSPStaple = der
		if e.cert.CompareAndSwap(cur, &next) {
			return true
		}
	}
}
