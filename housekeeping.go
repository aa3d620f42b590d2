package certkeeper

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Housekeeping intervals. Last-seen times are written at most this often
// (and at Close), so a handshake never writes storage; expired
// certificates are swept on the same tick.
const (
	housekeepingEvery = 5 * time.Minute
	expiredKeepFor    = 24 * time.Hour // an expired record is kept this long, for status
)

// State kept in storage for operators and restarts.
const (
	seenState   = "seen"           // primary name → last handshake (unix seconds)
	errorsState = "renewal-errors" // storage key → the last renewal failure
)

// RenewalError is the last failed renewal of a certificate, as kept in
// storage for "certkeeper status".
type RenewalError struct {
	Names   []string  `json:"names"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
	RetryAt time.Time `json:"retry_at"`
	Attempt int       `json:"attempt"`
}

// housekeeping holds the state the housekeeper goroutine maintains.
type housekeeping struct {
	once     sync.Once
	loadOnce sync.Once
	mu       sync.Mutex       // guards seen
	seen     map[string]int64 // primary name → last seen, as stored
	errMu    sync.Mutex       // serialises updates of the stored renewal errors
}

// startHousekeeping starts the goroutine that writes last-seen times and
// sweeps expired certificates; it ends with Close.
func (m *Manager) startHousekeeping() {
	m.hk.once.Do(func() {
		if m.ctx.Err() != nil {
			return
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			t := time.NewTicker(housekeepingEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					m.housekeep(m.ctx)
				case <-m.ctx.Done():
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					m.guard("housekeeping", slog.String("step", "storing last-seen times"), func() { m.flushSeen(ctx) })
					cancel()
					return
				}
			}
		}()
	})
}

// housekeep does one round of housekeeping. Each step runs contained: a
// panic in one is logged and the others, and later rounds, go on.
func (m *Manager) housekeep(ctx context.Context) {
	m.guard("housekeeping", slog.String("step", "storing last-seen times"), func() { m.flushSeen(ctx) })
	m.guard("housekeeping", slog.String("step", "sweeping expired certificates"), func() { m.sweepExpired(ctx) })
	m.guard("housekeeping", slog.String("step", "sweeping dead locks"), func() { m.sweepLocks(ctx) })
}

// storedSeen returns the stored last-seen time of name (zero if unknown),
// loading the stored map on first use.
func (m *Manager) storedSeen(ctx context.Context, name string) int64 {
	m.hk.loadOnce.Do(func() {
		m.hk.mu.Lock()
		defer m.hk.mu.Unlock()
		m.hk.seen = make(map[string]int64)
		if data, err := m.store.Load(ctx, storage.StateKey(seenState)); err == nil {
			if err := json.Unmarshal(data, &m.hk.seen); err != nil {
				m.logger().Warn("stored last-seen times are damaged; starting afresh", slog.Any("err", err))
				m.hk.seen = make(map[string]int64)
			}
		}
	})
	m.hk.mu.Lock()
	defer m.hk.mu.Unlock()
	return m.hk.seen[name]
}

// flushSeen writes the last-seen times of the certificates in memory.
func (m *Manager) flushSeen(ctx context.Context) {
	m.storedSeen(ctx, "") // load first, so nothing stored is dropped
	changed := false
	m.hk.mu.Lock()
	for _, c := range []*certCache{m.cache, m.rsaCache} {
		for _, e := range c.all() {
			if s := e.lastSeen.Load(); s > m.hk.seen[e.names[0]] {
				m.hk.seen[e.names[0]] = s
				changed = true
			}
		}
	}
	snapshot := maps.Clone(m.hk.seen)
	m.hk.mu.Unlock()
	if !changed {
		return
	}
	data, err := json.Marshal(snapshot)
	if err == nil {
		err = m.store.Store(ctx, storage.StateKey(seenState), data)
	}
	if err != nil && ctx.Err() == nil {
		m.logger().Warn("storing last-seen times", slog.Any("err", err))
	}
}

// sweepExpired deletes certificate records that expired more than a day
// ago (certificates no longer renewed: unused on-demand names, names no
// longer allowed) and forgets their last-seen times.
func (m *Manager) sweepExpired(ctx context.Context) {
	now := time.Now()
	// A storage that cannot list now is swept at the next run.
	_ = storage.EachCertificate(ctx, m.store, nil, func(key string, _ []byte, rec *storage.Certificate, err error) bool {
		if err != nil {
			if errors.Is(err, storage.ErrInvalidRecord) {
				// Not deleted: it may be the only copy of a key someone
				// wants back. A handshake for its name replaces it.
				m.logger().Warn("stored certificate record is invalid; skipping it (delete it, or let a handshake or cert issue replace it)",
					slog.String("key", key), slog.Any("err", err))
			}
			return true
		}
		if now.Sub(rec.NotAfter) < expiredKeepFor {
			return true
		}
		if err := m.store.Delete(ctx, key); err != nil {
			m.logger().Warn("deleting an expired certificate", slog.String("key", key), slog.Any("err", err))
			return true
		}
		m.forget(key)
		m.hk.mu.Lock()
		delete(m.hk.seen, rec.Names[0])
		m.hk.mu.Unlock()
		m.logger().Info("expired certificate removed", slog.Any("names", rec.Names), slog.Time("not_after", rec.NotAfter))
		return true
	})
}

// lockSweeper is implemented by storages that can remove the leases of
// dead holders (filestore); others expire them by themselves (Redis).
type lockSweeper interface {
	SweepLocks(ctx context.Context) (int, error)
}

// sweepLocks removes dead holders' leases, when the storage can.
func (m *Manager) sweepLocks(ctx context.Context) {
	s, ok := m.store.(lockSweeper)
	if !ok {
		return
	}
	if n, err := s.SweepLocks(ctx); err != nil {
		m.logger().Warn("sweeping dead locks", slog.Any("err", err))
	} else if n > 0 {
		m.logger().Debug("dead locks removed", slog.Int("count", n))
	}
}

// noteRenewal records the outcome of a renewal attempt for status: the
// failure (err != nil) or its clearing.
func (m *Manager) noteRenewal(ctx context.Context, key string, names []string, err error, retry time.Time, attempt int) {
	m.hk.errMu.Lock()
	defer m.hk.errMu.Unlock()
	all := map[string]RenewalError{}
	if data, lerr := m.store.Load(ctx, storage.StateKey(errorsState)); lerr == nil {
		_ = json.Unmarshal(data, &all)
	}
	if err == nil {
		if _, ok := all[key]; !ok {
			return
		}
		delete(all, key)
	} else {
		all[key] = RenewalError{Names: names, Error: err.Error(), At: time.Now().UTC(), RetryAt: retry.UTC(), Attempt: attempt}
	}
	data, merr := json.Marshal(all)
	if merr == nil {
		merr = m.store.Store(ctx, storage.StateKey(errorsState), data)
	}
	if merr != nil {
		m.logger().Warn("storing renewal status", slog.Any("err", merr))
	}
}

// LoadStatusState reads the state "certkeeper status" shows beside the
// certificates: last-seen times by primary name and the last renewal
// failure by storage key.
func LoadStatusState(ctx context.Context, st storage.Storage) (seen map[string]time.Time, errs map[string]RenewalError, err error) {
	seen = map[string]time.Time{}
	errs = map[string]RenewalError{}
	raw := map[string]int64{}
	if data, lerr := st.Load(ctx, storage.StateKey(seenState)); lerr == nil {
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, nil, err
		}
	} else if !isNotFound(lerr) {
		return nil, nil, lerr
	}
	for name, s := range raw {
		seen[name] = time.Unix(s, 0).UTC()
	}
	if data, lerr := st.Load(ctx, storage.StateKey(errorsState)); lerr == nil {
		if err := json.Unmarshal(data, &errs); err != nil {
			return nil, nil, err
		}
	} else if !isNotFound(lerr) {
		return nil, nil, lerr
	}
	return seen, errs, nil
}
