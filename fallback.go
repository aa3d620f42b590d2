package certkeeper

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/issuer/selfsigned"
	"github.com/certkeeper/certkeeper/storage"
)

// selfSignedLifetime is the validity of fallback certificates: short, as
// they only stand in until a real certificate can be had; they are made
// again when less than selfSignedRenew is left.
const (
	selfSignedLifetime = 7 * 24 * time.Hour
	selfSignedRenew    = 24 * time.Hour
)

// fallbackCerts holds the self-signed certificates of
// Manager.SelfSignedFallback: in memory only, bounded like the main cache,
// never stored and never renewed, so nothing mistakes one for a
// certificate from an issuer.
type fallbackCerts struct {
	once  sync.Once
	cache *certCache
}

// selfSignedFor returns the self-signed stand-in for name, making one if
// needed, or nil when SelfSignedFallback is off or one cannot be made.
func (m *Manager) selfSignedFor(name string) *managed {
	if !m.SelfSignedFallback {
		return nil
	}
	m.fallback.once.Do(func() { m.fallback.cache = newCertCache(m.CacheSize) })
	if e := m.fallback.cache.get(name); e != nil && time.Until(e.cert.Load().Leaf.NotAfter) > selfSignedRenew {
		return e
	}
	tc, err := newSelfSigned(name)
	if err != nil {
		m.logger().Error("making a self-signed fallback certificate", "name", name, "err", err)
		return nil
	}
	e := &managed{names: []string{name}, issuer: "self-signed"}
	e.cert.Store(tc)
	m.fallback.cache.put(e)
	m.logger().Info("serving a self-signed fallback certificate", "name", name)
	return e
}

// newSelfSigned makes a self-signed certificate for name with a new
// ECDSA P-256 key.
func newSelfSigned(name string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	chain, err := selfsigned.Certificate(key, []string{name}, selfSignedLifetime)
	if err != nil {
		return nil, err
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	tc, err := tls.X509KeyPair(chain, keyPEM)
	if err != nil {
		return nil, err
	}
	return &tc, nil
}
