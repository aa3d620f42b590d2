package certkeeper

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// loadError is a renewal check's failure to read its record: the
// storage's, not the CA's. Its retries do not climb the CA's backoff
// (100 minutes, then a day: a two-hour Redis outage put every renewal a
// day off); they come within ten minutes, capped by the certificate's
// time left like any retry, and at once, spread out, when the storage
// answers again (watchStorage). Before, a certificate due during a short
// outage stayed expired for minutes after it, on every node (a cluster
// trial: 7.5 minutes after Redis came back).
type loadError struct{ err error }

func (e *loadError) Error() string { return e.err.Error() }
func (e *loadError) Unwrap() error { return e.err }

// loadFailedSteps caps the backoff step of a loadError's retry: at most
// renewal.Backoff's second, ten minutes.
const loadFailedSteps = 2

// knownRecord is what this node knows of the certificate under key when
// its record cannot be read: the one held in memory, else the names and
// dates the renewal schedule keeps (storedDates), so that a retry is
// capped by its expiry and its log line and status entry name it; nil
// if neither.
func (m *Manager) knownRecord(key string) *storage.Certificate {
	if rec := m.heldRecord(key); rec != nil {
		return rec
	}
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	d := m.renew.stored[key]
	if d == nil {
		return nil
	}
	notBefore, notAfter := d.dates()
	return &storage.Certificate{Names: []string{m.renew.storedName(key, d)}, Issuer: d.issuer.Value(), NotBefore: notBefore, NotAfter: notAfter}
}

// noteLoadFailed remembers that the renewal of key waits for the storage
// and starts watching it.
func (m *Manager) noteLoadFailed(key string) {
	m.renew.mu.Lock()
	if m.renew.loadFailed != nil {
		m.renew.loadFailed[key] = struct{}{}
	}
	m.renew.mu.Unlock()
	m.watchStorage()
}

// watchStorage reads, from 1 s apart doubling to 30 s, one of the records
// whose renewal could not read it, until one read succeeds (or the record
// is gone, which the storage answered): then those renewals are checked
// again (resumeLoadFailed). One watcher at a time; it ends with Close.
func (m *Manager) watchStorage() {
	if !m.renew.watching.CompareAndSwap(false, true) {
		return
	}
	if !m.track() {
		m.renew.watching.Store(false)
		return
	}
	go func() {
		defer m.wg.Done()
		defer m.renew.watching.Store(false)
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(wait):
			}
			key, ok := m.oneLoadFailed()
			if !ok {
				return // resumed by another path (a renewal's read succeeded)
			}
			ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
			_, err := m.store.Load(ctx, key)
			cancel()
			if err == nil || isNotFound(err) {
				m.resumeLoadFailed()
				return
			}
		}
	}()
}

// oneLoadFailed returns a key whose renewal waits for the storage.
func (m *Manager) oneLoadFailed() (string, bool) {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	for key := range m.renew.loadFailed {
		return key, true
	}
	return "", false
}

// resumeLoadFailed schedules the renewal checks that could not read their
// records again, now the storage answers: the first now, the others
// renewSpacing apart, as after a start, so that a storage back from an
// outage is not asked for every record at once.
func (m *Manager) resumeLoadFailed() {
	s := m.scheduler()
	if s == nil {
		return
	}
	m.renew.mu.Lock()
	keys := make([]string, 0, len(m.renew.loadFailed))
	for key := range m.renew.loadFailed {
		keys = append(keys, key)
	}
	clear(m.renew.loadFailed)
	m.renew.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	m.logger().Info("storage answers again: checking the renewals it held up", slog.Int("certificates", len(keys)))
	spacing, now := m.renewSpacing(), time.Now()
	for i, key := range keys {
		if at, ok := s.When(key); ok {
			if soon := now.Add(time.Duration(i)*spacing + rand.N(spacing)); soon.Before(at) {
				s.Schedule(key, soon)
			}
		}
	}
}

// loadsFailed reports whether any renewal waits for the storage.
func (m *Manager) loadsFailed() bool {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	return len(m.renew.loadFailed) > 0
}
