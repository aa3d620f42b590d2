package certkeeper

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Housekeeping intervals. Last-seen times are written at most this often
// (and at Close), so a handshake never writes storage; expired
// certificates are swept on the same tick, a batch at a time.
const (
	housekeepingEvery = 5 * time.Minute
	expiredKeepFor    = 24 * time.Hour // an expired record is kept this long, for status
	// sweepBatch is how many certificate records one housekeeping round
	// checks for expiry; the next round goes on from where it stopped,
	// so a round costs the same with 1,000 or 1,000,000 certificates.
	sweepBatch = 1000
	// challengeSweepEvery is how often stale shared challenge answers are
	// looked for: a listing of its own (a SCAN on Redis), for records that
	// only cost space, so not every round.
	challengeSweepEvery = time.Hour
)

// State kept in storage for operators and restarts.
const (
	seenState   = "seen"           // the old single value: primary name → last handshake (read, then removed)
	errorsState = "renewal-errors" // storage key → the last renewal failure
	// seenShards is the number of values the last-seen times are kept
	// in (state/seen/00.json … ff.json), by a hash of the primary name:
	// a flush writes only the shards that changed, and no value grows
	// with every name stored.
	seenShards = 256
)

// seenShardKey is the storage key of last-seen shard i.
func seenShardKey(i int) string { return storage.StateKey(fmt.Sprintf("seen/%02x", i)) }

// seenShardPrefix is the prefix of every seenShardKey.
var seenShardPrefix = strings.TrimSuffix(storage.StateKey("seen/"), ".json")

// seenShardOf is the shard of name's last-seen time (FNV-1a).
func seenShardOf(name string) int {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return int(h % seenShards)
}

// housekeeping holds the state the housekeeper goroutine maintains.
type housekeeping struct {
	once     sync.Once
	loadOnce sync.Once
	mu       sync.Mutex                      // guards the fields below
	seen     [seenShards]map[string]int64    // primary name → last seen (unix seconds), by shard
	gone     [seenShards]map[string]struct{} // names whose time was dropped, to drop from storage too
	dirty    [seenShards]bool                // shards changed since they were stored
	legacy   bool                            // the old single value exists: remove it once the shards are stored
	cursor   string                          // the last certificate key the expiry sweep checked
	swept    time.Time                       // when sweepLeftovers last ran
	errMu    sync.Mutex                      // serialises writes of the stored failures
	failures failureQueue                    // changes to the stored failures not yet written
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
	m.guard("housekeeping", slog.String("step", "sweeping what issuances cut short left"), func() { m.sweepLeftovers(ctx) })
}

// sweepLeftovers deletes, once every challengeSweepEvery, what an
// issuance cut short (a process killed during it) leaves behind: shared
// challenge answers (sharedsolver.go) past their expiry, ignored but
// stored for ever, and pending orders (issue.go) too old to be resumed,
// each holding a private key. Those of issuances in progress are a
// handful; each listing is one prefix.
func (m *Manager) sweepLeftovers(ctx context.Context) {
	now := time.Now()
	m.hk.mu.Lock()
	due := now.Sub(m.hk.swept) >= challengeSweepEvery
	if due {
		m.hk.swept = now
	}
	m.hk.mu.Unlock()
	if !due {
		return
	}
	m.sweepPrefix(ctx, challengesPrefix, "stale challenge answer removed", func(data []byte) bool {
		var c sharedChallenge
		return json.Unmarshal(data, &c) != nil || !now.Before(c.Expires)
	})
	m.sweepPrefix(ctx, pendingPrefix, "stale pending order removed", func(data []byte) bool {
		return !resumable(data, now)
	})
}

// sweepPrefix deletes the keys under prefix whose value stale reports.
func (m *Manager) sweepPrefix(ctx context.Context, prefix, msg string, stale func(data []byte) bool) {
	keys, err := m.store.List(ctx, prefix)
	if err != nil {
		return // the next sweep tries again; a storage that fails is reported elsewhere
	}
	for _, key := range keys {
		data, err := m.store.Load(ctx, key)
		if err != nil || !stale(data) {
			continue
		}
		if err := m.store.Delete(ctx, key); err == nil {
			m.logger().Debug(msg, slog.String("key", key))
		}
	}
}

// loadSeen reads the stored last-seen times into memory, once: the
// shards, and the old single value of earlier versions (whose names are
// then written to the shards at the next flush, and the value removed).
func (m *Manager) loadSeen(ctx context.Context) {
	m.hk.loadOnce.Do(func() {
		keys, err := m.store.List(ctx, seenShardPrefix)
		if err != nil && ctx.Err() == nil { // canceled: the Manager is closing, not failing
			m.logger().Warn("listing stored last-seen times; unused certificates are found from now on", slog.Any("err", err))
		}
		for _, key := range keys {
			data, err := m.store.Load(ctx, key)
			if err != nil {
				continue
			}
			m.mergeSeen(key, data, false)
		}
		if data, err := m.store.Load(ctx, storage.StateKey(seenState)); err == nil {
			m.mergeSeen(storage.StateKey(seenState), data, true)
			m.hk.mu.Lock()
			m.hk.legacy = true
			m.hk.mu.Unlock()
		}
	})
}

// mergeSeen adds the last-seen times of one stored value to memory; dirty
// marks their shards for the next flush.
func (m *Manager) mergeSeen(key string, data []byte, dirty bool) {
	var times map[string]int64
	if err := json.Unmarshal(data, &times); err != nil {
		m.logger().Warn("stored last-seen times are damaged; ignoring them", slog.String("key", key), slog.Any("err", err))
		return
	}
	m.hk.mu.Lock()
	defer m.hk.mu.Unlock()
	for name, s := range times {
		i := seenShardOf(name)
		if m.seenLocked(i, name, s) && dirty {
			m.hk.dirty[i] = true
		}
	}
}

// seenLocked raises name's time in shard i to s and reports whether it
// changed. hk.mu is held.
func (m *Manager) seenLocked(i int, name string, s int64) bool {
	if s <= m.hk.seen[i][name] {
		return false
	}
	if m.hk.seen[i] == nil {
		m.hk.seen[i] = make(map[string]int64)
	}
	m.hk.seen[i][name] = s
	delete(m.hk.gone[i], name)
	return true
}

// storedSeen returns the last-seen time kept for name, zero if unknown.
// It reads memory only (the stored times are loaded at start by the
// renewal scan), so a cache miss costs no extra storage round trip.
func (m *Manager) storedSeen(_ context.Context, name string) int64 {
	return m.seenAt(name)
}

// seenAt returns the last-seen time kept for name (a certificate that
// left the cache, or one loaded from storage), zero if unknown.
func (m *Manager) seenAt(name string) int64 {
	m.hk.mu.Lock()
	defer m.hk.mu.Unlock()
	return m.hk.seen[seenShardOf(name)][name]
}

// noteSeen keeps s as name's last-seen time if it is later than the one
// kept.
func (m *Manager) noteSeen(name string, s int64) {
	if s == 0 {
		return
	}
	i := seenShardOf(name)
	m.hk.mu.Lock()
	defer m.hk.mu.Unlock()
	if m.seenLocked(i, name, s) {
		m.hk.dirty[i] = true
	}
}

// forgetSeen drops name's last-seen time, here and, at the next flush, in
// storage.
func (m *Manager) forgetSeen(name string) {
	i := seenShardOf(name)
	m.hk.mu.Lock()
	defer m.hk.mu.Unlock()
	delete(m.hk.seen[i], name)
	if m.hk.gone[i] == nil {
		m.hk.gone[i] = make(map[string]struct{})
	}
	m.hk.gone[i][name] = struct{}{}
	m.hk.dirty[i] = true
}

// flushSeen writes the last-seen times that changed: those of the
// certificates in memory, and those kept for certificates that left it.
// Each changed shard is merged with the stored one (the later time wins),
// so nodes sharing storage do not undo each other's times.
func (m *Manager) flushSeen(ctx context.Context) {
	m.loadSeen(ctx) // first, so nothing stored is dropped
	for _, c := range []*certCache{m.cache, m.rsaCache} {
		for _, e := range c.all() {
			m.noteSeen(e.names[0], e.lastSeen.Load())
		}
	}
	var failed error
	for i := range seenShards {
		m.hk.mu.Lock()
		if !m.hk.dirty[i] {
			m.hk.mu.Unlock()
			continue
		}
		m.hk.dirty[i] = false
		times := maps.Clone(m.hk.seen[i])
		gone := maps.Clone(m.hk.gone[i])
		m.hk.mu.Unlock()
		if err := m.storeSeenShard(ctx, i, times, gone); err != nil {
			failed = err
			m.hk.mu.Lock()
			m.hk.dirty[i] = true
			m.hk.mu.Unlock()
			continue
		}
		m.hk.mu.Lock()
		for name := range gone {
			delete(m.hk.gone[i], name)
		}
		m.hk.mu.Unlock()
	}
	if failed != nil {
		if ctx.Err() == nil {
			m.logger().Warn("storing last-seen times; will try again", slog.Any("err", failed))
		}
		return
	}
	m.hk.mu.Lock()
	legacy := m.hk.legacy
	m.hk.legacy = false
	m.hk.mu.Unlock()
	if legacy {
		if err := m.store.Delete(ctx, storage.StateKey(seenState)); err != nil {
			m.logger().Warn("removing the old last-seen value (now kept in state/seen/)", slog.Any("err", err))
		}
	}
}

// storeSeenShard merges times into stored shard i, without the names in
// gone, and stores it.
func (m *Manager) storeSeenShard(ctx context.Context, i int, times map[string]int64, gone map[string]struct{}) error {
	key := seenShardKey(i)
	stored := map[string]int64{}
	if data, err := m.store.Load(ctx, key); err == nil {
		if json.Unmarshal(data, &stored) != nil {
			stored = map[string]int64{} // damaged: rewritten whole
		}
	} else if !isNotFound(err) {
		return err
	}
	for name, s := range times {
		if s > stored[name] {
			stored[name] = s
		}
	}
	for name := range gone {
		delete(stored, name)
	}
	data, err := json.Marshal(stored)
	if err != nil {
		return err
	}
	return m.store.Store(ctx, key, data)
}

// sweepExpired checks the next batch of certificate records and deletes
// those that expired more than a day ago (certificates no longer renewed:
// unused on-demand names, names no longer allowed), forgetting their
// last-seen times. It reports whether the batch reached the last key (the
// next call starts again from the first).
func (m *Manager) sweepExpired(ctx context.Context) (wrapped bool) {
	keys, err := m.store.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return true
	}
	m.pruneGone(ctx, keys)
	m.hk.mu.Lock()
	cursor := m.hk.cursor
	m.hk.mu.Unlock()
	start := sort.SearchStrings(keys, cursor)
	if start < len(keys) && keys[start] == cursor {
		start++
	}
	end := min(start+sweepBatch, len(keys))
	now := time.Now()
	for _, key := range keys[start:end] {
		if ctx.Err() != nil {
			return false
		}
		m.sweepOne(ctx, key, now)
	}
	wrapped = end >= len(keys)
	m.hk.mu.Lock()
	if wrapped {
		m.hk.cursor = ""
	} else {
		m.hk.cursor = keys[end-1]
	}
	m.hk.mu.Unlock()
	return wrapped
}

// pruneGone stops renewing, and counting in Stats, the certificates not
// in memory whose records are gone from storage (keys lists every
// certificate key, sorted): deleted by another process (certkeeper
// storage delete, another node's sweep, a hand), they were counted as
// renewed, with their old dates, until a restart (a trial's metrics
// called a deleted certificate expired for good). Damaged records that
// are gone stop counting too, and certificates let go as unused whose
// records are gone are forgotten.
func (m *Manager) pruneGone(ctx context.Context, keys []string) {
	listed := func(key string) bool {
		i := sort.SearchStrings(keys, key)
		return i < len(keys) && keys[i] == key
	}
	var gone []string
	m.renew.mu.Lock()
	for key := range m.renew.stored {
		if _, held := m.renew.held[key]; !held && !listed(key) {
			gone = append(gone, key)
		}
	}
	for key := range m.renew.damaged {
		if !listed(key) {
			gone = append(gone, key)
		}
	}
	for key := range m.renew.letGo {
		if !listed(key) {
			delete(m.renew.letGo, key) // deleted by another node's sweep: nothing to take up
		}
	}
	m.renew.mu.Unlock()
	for _, key := range gone {
		if _, unstored := m.unstored.Load(key); unstored {
			continue // issued while storage failed: to be stored yet (unstored.go)
		}
		if _, err := m.store.Load(ctx, key); !isNotFound(err) {
			continue // stored since the listing, or storage failing: not known gone
		}
		m.forget(key)
		m.logger().Info("certificate record removed from storage by another process: no longer renewed here", slog.String("key", key))
	}
}

// sweepOne deletes the record under key if it expired more than a day
// ago. Only its dates are decoded unless it has expired.
func (m *Manager) sweepOne(ctx context.Context, key string, now time.Time) {
	data, err := m.store.Load(ctx, key)
	if err != nil && !errors.Is(err, storage.ErrInvalidRecord) {
		return
	}
	if err == nil {
		if d, err := storage.UnmarshalFields(key, data); err == nil && now.Sub(d.NotAfter) < expiredKeepFor {
			m.learnStored(ctx, key, data) // stored by another process, its notice lost or never sent
			return
		}
	}
	var rec *storage.Certificate
	if err == nil {
		rec, err = storage.UnmarshalCertificate(key, data)
	}
	if err != nil {
		// Not deleted: it may be the only copy of a key someone
		// wants back. A handshake for its name replaces it.
		m.logger().Warn("stored certificate record is invalid; skipping it (delete it, or let a handshake or cert issue replace it)",
			slog.String("key", key), slog.Any("err", err))
		return
	}
	if now.Sub(rec.NotAfter) < expiredKeepFor {
		return
	}
	if err := m.store.Delete(ctx, key); err != nil {
		m.logger().Warn("deleting an expired certificate", slog.String("key", key), slog.Any("err", err))
		return
	}
	m.forget(key)
	m.forgetSeen(rec.Names[0])
	m.logger().Info("expired certificate removed", slog.Any("names", rec.Names), slog.Time("not_after", rec.NotAfter))
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
