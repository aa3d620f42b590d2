package certkeeper

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
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
// certificate from an issuer. Those for clients that cannot use ECDSA
// (rsa) share one RSA key, made at the first: an RSA key takes tens of
// milliseconds to make, and a scan of refused names from such a client
// must not cost one per name; a stand-in nobody trusts loses nothing by
// sharing its key.
type fallbackCerts struct {
	once  sync.Once
	cache *certCache
	rsa   *certCache

	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaErr  error
}

// selfSignedFor returns the self-signed stand-in for name, making one if
// needed, or nil when SelfSignedFallback is off or one cannot be made.
// rsaClient asks for an RSA one, for a client that cannot use ECDSA.
func (m *Manager) selfSignedFor(name string, rsaClient bool) *managed {
	if !m.SelfSignedFallback {
		return nil
	}
	f := &m.fallback
	f.once.Do(func() { f.cache, f.rsa = newCertCache(m.CacheSize), newCertCache(m.CacheSize) })
	cache := f.cache
	if rsaClient {
		cache = f.rsa
	}
	if e := cache.get(name); e != nil && time.Until(e.cert.Load().Leaf.NotAfter) > selfSignedRenew {
		return e
	}
	var key crypto.Signer
	var err error
	if rsaClient {
		f.rsaOnce.Do(func() { f.rsaKey, f.rsaErr = rsa.GenerateKey(rand.Reader, 2048) })
		key, err = f.rsaKey, f.rsaErr
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	var tc *tls.Certificate
	if err == nil {
		tc, err = newSelfSigned(name, key)
	}
	if err != nil {
		m.logger().Error("making a self-signed fallback certificate", "name", name, "err", err)
		return nil
	}
	e := &managed{names: []string{name}, issuer: "self-signed"}
	e.cert.Store(tc)
	cache.put(e)
	m.logger().Info("serving a self-signed fallback certificate", "name", name, "rsa", rsaClient)
	return e
}

// newSelfSigned makes a self-signed certificate for name with key.
func newSelfSigned(name string, key crypto.Signer) (*tls.Certificate, error) {
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
