package certkeeper

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"time"

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
	m.staples.KeepRevoked(tc.Leaf, issuer, func(der []byte) bool { return m.setStaple(e, c, der) },
		func(se *stapling.StatusError) { m.ocspRevoked(e, tc.Leaf, se) })
}

// ocspRevoked replaces e's certificate leaf, which a verified response of
// its CA's OCSP responder says is revoked: clients that check refuse it,
// and the CA may have revoked it because its key is compromised. As after
// RevokeStored, its record is marked revoked (so every Manager on the
// storage replaces it, with a new key, and status shows it) and its
// renewal brought forward. A name is replaced this way at most once an
// hour (a tenth of a shorter lifetime), the responder asked again
// meanwhile: one that called every new certificate revoked would
// otherwise have one ordered after another.
func (m *Manager) ocspRevoked(e *managed, leaf *x509.Certificate, se *stapling.StatusError) {
	if m.scheduler() == nil { // closed
		return
	}
	now := time.Now()
	wait := min(time.Hour, leaf.NotAfter.Sub(leaf.NotBefore)/10)
	m.renew.mu.Lock()
	last, recent := m.renew.ocsp[e.key]
	if !recent || now.Sub(last) >= wait {
		m.renew.ocsp[e.key] = now
	}
	for k, at := range m.renew.ocsp {
		if now.Sub(at) >= time.Hour {
			delete(m.renew.ocsp, k)
		}
	}
	m.renew.mu.Unlock()
	if recent && now.Sub(last) < wait {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, time.Minute)
	defer cancel()
	replaced, err := markRevoked(ctx, m.store, e.key, e.names[0], leaf, se.Reason)
	if err != nil && m.ctx.Err() != nil {
		return // closing: the next start's first OCSP check reports it again
	}
	if err != nil {
		m.logger().Error("could not mark a certificate its OCSP responder says is revoked; trying again at the next OCSP check",
			slog.Any("names", e.names), slog.String("reason", se.Reason), slog.Any("err", err))
		m.renew.mu.Lock()
		delete(m.renew.ocsp, e.key)
		m.renew.mu.Unlock()
		return
	}
	if !replaced { // else storage holds its successor already
		m.replaceRevoked(e.key)
	}
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
