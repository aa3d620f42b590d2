package limit

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// FailureBackoff defaults; each is explained on its field.
const (
	defaultFailureLimit    = 5
	defaultFailureWindow   = time.Hour
	defaultFailureBackoff  = time.Minute
	defaultFailureMaxNames = 10_000
)

// FailureBackoff remembers when issuance failed for each name, and says
// when a name may be tried again. It is the negative cache in front of the
// CA: a name whose validation failed (DNS not yet pointing here, a
// firewall) is not reordered on every handshake, and never more often than
// the CA allows. Let's Encrypt allows 5 failed authorizations per name per
// account per hour (https://letsencrypt.org/docs/rate-limits/); beyond
// that every order for the name fails at once.
//
// A name may be tried again when both hold:
//
//   - fewer than Limit failures fall in the last Window, counting back
//     from now; otherwise it waits until the oldest of the last Limit
//     leaves the window. A sliding window is stricter than the CA's token
//     bucket, so it never exceeds it;
//   - Backoff has passed since its last failure, doubled for each further
//     failure in the window (1, 2, 4, 8 minutes by default), so that the
//     few tries an hour are spread out and give DNS time to propagate,
//     rather than spent by the next few handshakes within a second.
//
// Its state (State, Restore) is plain data that encodes with
// encoding/json, for its owner to keep in storage: a process that
// restarts, or crashes in a loop, must not spend the CA's failure budget
// again. Memory is bounded: each name keeps at most Limit times, failures
// older than Window are pruned (by Record, 16 times per Window and when
// MaxNames is reached), and at most MaxNames names are kept, dropping
// those whose last failure is oldest (a sixteenth of them at a time, so
// that a flood of new names does not scan them all at each failure). The default of
// 10,000 names is more than a CA account can fail in an hour (Let's
// Encrypt allows 300 orders per 3 hours), so in practice nothing current
// is dropped.
//
// Times are passed in, not read from the clock, so that callers and
// tests decide what "now" is. The zero value is ready to use. A
// FailureBackoff must not be copied or have its fields changed after
// first use. It is safe for concurrent use.
type FailureBackoff struct {
	// Limit is how many failures within Window hold a name back until
	// the oldest of them leaves the window. Zero means 5, Let's
	// Encrypt's limit on failed authorizations.
	Limit int

	// Window is the period Limit counts over. Zero means 1 hour.
	Window time.Duration

	// Backoff is the wait after a name's first failure in the window,
	// doubled with each further failure and capped at Window. Zero means
	// 1 minute; negative means none (only Limit applies).
	Backoff time.Duration

	// MaxNames is the most names remembered. Zero means 10,000.
	MaxNames int

	mu sync.Mutex // guards names and pruned
	// names holds each name's failure times, oldest first, at most
	// Limit of them, without monotonic clock readings (so that
	// restored and recorded times compare alike).
	names map[string][]time.Time
	// pruned is when Record last dropped the names whose failures all
	// left the window.
	pruned time.Time
}

// BackoffState is the state of a FailureBackoff: each name's recent
// failure times, oldest first. It encodes with encoding/json as
// {"failures":{"a.test":["2026-01-02T15:04:05Z", ...]}}.
type BackoffState struct {
	// Failures maps a name to the times of its recent failures.
	Failures map[string][]time.Time `json:"failures,omitempty"`
}

// Record notes that issuance for name failed at at. Record a failed
// authorization (the CA tried to validate and could not): that is what
// the CA counts. Recording other failures too (an order the CA refused)
// only makes the backoff more careful.
func (b *FailureBackoff) Record(name string, at time.Time) {
	at = at.Round(0)
	window := b.window()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.names == nil {
		b.names = make(map[string][]time.Time)
	}
	cutoff := at.Add(-window)
	old := b.names[name]
	if old == nil && len(b.names) >= b.maxNames() || at.Sub(b.pruned) >= window/pruneEvery {
		// Stale names are dropped by a scan of every name, so not at
		// every failure: a flood of failing names would pay for it on
		// each one. Every window/pruneEvery, and when the names are at
		// MaxNames, is a scan per many failures.
		b.pruneBefore(cutoff)
		b.pruned = at
		if old == nil && len(b.names) >= b.maxNames() {
			b.evictOldest()
		}
	}
	b.names[name] = b.merge(old, []time.Time{at}, cutoff)
}

// pruneEvery is how many times per Window Record drops the names whose
// failures all left it.
const pruneEvery = 16

// pruneBefore drops the names whose last failure is not after cutoff.
// b.mu must be held.
func (b *FailureBackoff) pruneBefore(cutoff time.Time) {
	for n, times := range b.names {
		if !times[len(times)-1].After(cutoff) {
			delete(b.names, n)
		}
	}
}

// RecordRejected notes that the CA refused name outright at at (its
// policy forbids it): retrying soon cannot help, so the name is held back
// for a whole Window, as if it had failed Limit times at at. The times
// are a nanosecond apart, the state's format is unchanged, and a restored
// state holds the name back as long.
func (b *FailureBackoff) RecordRejected(name string, at time.Time) {
	at = at.Round(0)
	n := b.limit()
	times := make([]time.Time, n)
	for i := range times {
		times[i] = at.Add(time.Duration(i - n + 1))
	}
	for _, t := range times {
		b.Record(name, t)
	}
}

// Allowed reports whether name may be tried at now, and if not, the
// earliest time it may.
func (b *FailureBackoff) Allowed(name string, now time.Time) (ok bool, retryAt time.Time) {
	window := b.window()
	b.mu.Lock()
	times := b.names[name]
	b.mu.Unlock()
	// times is never modified in place (merge builds a new slice), so it
	// can be read without the lock.
	cutoff := now.Add(-window)
	i := len(times)
	for i > 0 && times[i-1].After(cutoff) {
		i--
	}
	recent := times[i:]
	k := len(recent)
	if k == 0 {
		return true, time.Time{}
	}
	if limit := b.limit(); k >= limit {
		retryAt = recent[k-limit].Add(window)
	}
	if d := b.backoffAfter(k, window); d > 0 {
		if t := recent[k-1].Add(d); t.After(retryAt) {
			retryAt = t
		}
	}
	if now.Before(retryAt) {
		return false, retryAt
	}
	return true, time.Time{}
}

// State returns a copy of the failures remembered.
func (b *FailureBackoff) State() BackoffState {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := BackoffState{Failures: make(map[string][]time.Time, len(b.names))}
	for n, times := range b.names {
		s.Failures[n] = slices.Clone(times)
	}
	return s
}

// Restore adds the failures in s to those remembered. Adding, not
// replacing: a process that restarts restores into an empty
// FailureBackoff, and nodes of a cluster that share a CA account can add
// each other's state without losing their own. A failure already
// remembered (the same name and time) is not counted twice.
func (b *FailureBackoff) Restore(s BackoffState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.names == nil {
		b.names = make(map[string][]time.Time, len(s.Failures))
	}
	for _, n := range slices.Sorted(maps.Keys(s.Failures)) {
		add := make([]time.Time, 0, len(s.Failures[n]))
		for _, t := range s.Failures[n] {
			add = append(add, t.Round(0))
		}
		if merged := b.merge(b.names[n], add, time.Time{}); len(merged) > 0 {
			b.names[n] = merged
		}
	}
	b.dropOldest(len(b.names) - b.maxNames())
}

// last returns the time of name's last failure. b.mu must be held.
func (b *FailureBackoff) last(name string) time.Time {
	times := b.names[name]
	return times[len(times)-1]
}

// merge returns a new slice of the times in old and add after cutoff,
// sorted, without duplicates, and at most the newest Limit of them.
func (b *FailureBackoff) merge(old, add []time.Time, cutoff time.Time) []time.Time {
	all := make([]time.Time, 0, len(old)+len(add))
	for _, t := range slices.Concat(old, add) {
		if t.After(cutoff) {
			all = append(all, t)
		}
	}
	slices.SortFunc(all, time.Time.Compare)
	all = slices.CompactFunc(all, time.Time.Equal)
	if limit := b.limit(); len(all) > limit {
		all = slices.Clone(all[len(all)-limit:])
	}
	return all
}

// evictOldest drops the names whose last failure is oldest: one in
// evictShare of MaxNames, at least one, so that a flood of new failing
// names sorts the names once per many failures, not scans them at each.
// b.mu must be held.
func (b *FailureBackoff) evictOldest() {
	b.dropOldest(max(1, b.maxNames()/evictShare) + len(b.names) - b.maxNames())
}

// evictShare: evictOldest drops 1/evictShare of MaxNames at a time.
const evictShare = 16

// dropOldest drops the n names whose last failure is oldest. b.mu must be
// held.
func (b *FailureBackoff) dropOldest(n int) {
	if n <= 0 {
		return
	}
	byLast := slices.SortedFunc(maps.Keys(b.names), func(x, y string) int {
		return b.last(x).Compare(b.last(y))
	})
	for _, name := range byLast[:min(n, len(byLast))] {
		delete(b.names, name)
	}
}

// backoffAfter returns the wait after the last of k failures in the
// window: Backoff doubled k-1 times, capped at window.
func (b *FailureBackoff) backoffAfter(k int, window time.Duration) time.Duration {
	d := b.Backoff
	switch {
	case d < 0:
		return 0
	case d == 0:
		d = defaultFailureBackoff
	}
	for i := 1; i < k && d < window; i++ {
		d *= 2
	}
	return min(d, window)
}

func (b *FailureBackoff) limit() int {
	if b.Limit > 0 {
		return b.Limit
	}
	return defaultFailureLimit
}

func (b *FailureBackoff) window() time.Duration {
	if b.Window > 0 {
		return b.Window
	}
	return defaultFailureWindow
}

func (b *FailureBackoff) maxNames() int {
	if b.MaxNames > 0 {
		return b.MaxNames
	}
	return defaultFailureMaxNames
}
