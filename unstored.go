package certkeeper

import (
	"context"
	"log/slog"
	"time"

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
