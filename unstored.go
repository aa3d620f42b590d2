package certkeeper

import (
	"context"
	"crypto"
	"encoding/pem"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

// unstoredRetryEvery is how often a certificate that was issued and could
// not be stored is offered to storage again (Manager.unstoredEvery, set
// by tests, overrides it).
const unstoredRetryEvery = 30 * time.Second

// unstoredTimeout bounds one attempt to store it (its lock, a read, a
// write).
const unstoredTimeout = 10 * time.Second

// keepUnstored keeps a certificate the CA issued that storage refused (a
// full disk): obtain serves it from memory, and a goroutine stores it as
// soon as storage takes it, rather than ordering it again at every retry
// and spending the CA's limits (Let's Encrypt's five duplicates a week)
// on certificates thrown away. It returns ns itself once the Manager is
// closed: nobody would store it.
func (m *Manager) keepUnstored(ns *UnstoredError) error {
	if !m.track() {
		return ns
	}
	rec := ns.Issued.Record
	m.unstored.Store(ns.Issued.Key, ns)
	m.logger().Error("certificate issued but not stored; serving it from memory and trying to store it every 30 s: free the storage",
		slog.Any("names", rec.Names), slog.String("key", ns.Issued.Key), slog.Any("err", ns.Err))
	go func() {
		defer m.wg.Done()
		m.storeLater(ns)
	}()
	return nil
}

// storeLater offers ns to storage every unstoredRetryEvery until it is
// stored (or a record at least as new is), a renewal of it that could not
// be stored either replaces it, the certificate expires, or the Manager
// closes, when it makes one last attempt.
func (m *Manager) storeLater(ns *UnstoredError) {
	rec := ns.Issued.Record
	defer m.unstored.CompareAndDelete(ns.Issued.Key, ns)
	every := unstoredRetryEvery
	if m.unstoredEvery > 0 {
		every = m.unstoredEvery
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for time.Now().Before(rec.NotAfter) {
		if cur, _ := m.unstored.Load(ns.Issued.Key); cur != ns {
			return // its renewal, not stored either, took its place
		}
		closing := false
		select {
		case <-m.ctx.Done():
			closing = true
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), unstoredTimeout)
		err := m.storeUnstored(ctx, ns)
		cancel()
		if err == nil {
			return
		}
		if closing {
			m.logger().Error("certificate issued but not stored; serving it from memory and trying to store it every 30 s: free the storage",
				slog.Any("names", rec.Names), slog.String("key", ns.Issued.Key), slog.Any("err", err),
				slog.String("closing", "lost: the next start orders it again"))
			return
		}
		m.logger().Debug("storing an issued certificate failed again", slog.Any("names", rec.Names), slog.Any("err", err))
	}
}

// storeUnstored stores ns under the issue lock of its name, unless storage
// holds a certificate issued no earlier by then (a later renewal, another
// node).
func (m *Manager) storeUnstored(ctx context.Context, ns *UnstoredError) error {
	rec, key := ns.Issued.Record, ns.Issued.Key
	unlock, err := m.store.Lock(ctx, storage.IssueLock(rec.Names[0]))
	if err != nil {
		return err
	}
	defer unlock()
	if data, err := m.store.Load(ctx, key); err == nil {
		if cur, err := storage.UnmarshalCertificate(key, data); err == nil && !cur.NotBefore.Before(rec.NotBefore) {
			return nil
		}
	}
	if err := ns.Store(ctx, m.store); err != nil {
		return err
	}
	m.notifyChanged(ctx, key)
	m.logger().Info("issued certificate stored after all", slog.Any("names", rec.Names), slog.String("key", key))
	return nil
}

// loadForRenewal reads the record under key for its renewal: a
// certificate issued and not stored yet (keepUnstored) in place of the
// older one storage holds, or of none, so that it is renewed on time
// while the storage is full.
func (m *Manager) loadForRenewal(ctx context.Context, key string) ([]byte, error) {
	data, err := m.store.Load(ctx, key)
	v, ok := m.unstored.Load(key)
	if !ok {
		return data, err
	}
	ns := v.(*UnstoredError)
	if err == nil {
		if cur, perr := storage.UnmarshalCertificate(key, data); perr == nil && !cur.NotBefore.Before(ns.Issued.Record.NotBefore) {
			return data, nil // storage holds one as new (another node's)
		}
	}
	return ns.Data, nil
}

// restoreMissing stores again the certificate held in memory under key
// when its record is gone from storage (removed by hand, or lost by a
// storage that keeps nothing across a restart, such as a Redis without
// persistence), and returns the record: the Manager then renews it and
// status lists it as before, rather than serving it past its expiry with
// no renewal. A certificate obtained on demand for a name the policy no
// longer allows is let go instead (served until it leaves memory, never
// renewed), as status.Remove says. It returns nil, nil when there is
// nothing to store (nothing held, or the policy's refusal), and storage's
// error when storing failed.
func (m *Manager) restoreMissing(ctx context.Context, key string) ([]byte, error) {
	e := m.held(key)
	if e == nil {
		return nil, nil
	}
	c := e.cert.Load()
	if c == nil || c.Leaf == nil {
		return nil, nil
	}
	signer, ok := c.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil
	}
	if e.onDemand && m.Policy != nil && !strings.HasPrefix(e.names[0], "*.") {
		if err := m.Policy.Decide(ctx, e.names[0]); err != nil {
			m.logger().Info("certificate removed from storage, and the policy does not allow its name now: not renewed",
				slog.Any("names", e.names), slog.String("key", key), slog.Time("not_after", c.Leaf.NotAfter), slog.Any("err", err))
			m.forget(key)
			return nil, nil
		}
	}
	rec := &storage.Certificate{Names: e.names, Issuer: e.issuer, NotBefore: c.Leaf.NotBefore, NotAfter: c.Leaf.NotAfter,
		KeyType: string(issuer.KeyTypeOf(c.Leaf.PublicKey)), OnDemand: e.onDemand, Obtained: time.Now().UTC()}
	if strings.HasSuffix(key, "_"+variantRSA+".json") {
		rec.Variant = variantRSA
	}
	for _, der := range c.Certificate {
		rec.ChainPEM = append(rec.ChainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	data, err := m.storeMissing(ctx, key, rec, signer)
	if err != nil {
		m.logger().Error("a certificate held in memory is missing from storage, and storing it again failed; trying again with the renewal backoff",
			slog.Any("names", e.names), slog.String("key", key), slog.Any("err", err))
		return nil, err
	}
	return data, nil
}

// storeMissing stores rec (with signer's key) under key, under the issue
// lock of its name, unless a record appeared there meanwhile (another
// node's), which it returns instead.
func (m *Manager) storeMissing(ctx context.Context, key string, rec *storage.Certificate, signer crypto.Signer) ([]byte, error) {
	unlock, err := m.store.Lock(ctx, storage.IssueLock(rec.Names[0]))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if data, err := m.store.Load(ctx, key); err == nil || !isNotFound(err) {
		return data, err
	}
	if rec.KeyPEM, err = storage.MarshalPrivateKeyPEM(signer); err != nil {
		return nil, err
	}
	data, err := storage.MarshalCertificate(rec)
	if err != nil {
		return nil, err
	}
	if err := m.store.Store(ctx, key, data); err != nil {
		return nil, err
	}
	m.notifyChanged(ctx, key)
	m.logger().Warn("a certificate held in memory was missing from storage (removed, or lost by the storage); stored it again",
		slog.Any("names", rec.Names), slog.String("key", key), slog.Time("not_after", rec.NotAfter))
	return data, nil
}

// Unstored returns the names of the certificates issued that storage
// refused (a full disk, a storage down): served from memory and offered
// to storage again every 30 s, they are lost if the process stops before
// then. The status page and the metrics show them (an ops trial found them
// only in the log, with status and its check OK). One list of names per
// certificate, in no order; nil when there are none.
func (m *Manager) Unstored() [][]string {
	var out [][]string
	m.unstored.Range(func(_, v any) bool {
		out = append(out, slices.Clone(v.(*UnstoredError).Issued.Record.Names))
		return true
	})
	return out
}
