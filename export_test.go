package certkeeper

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/time/rate"
)

// CacheLen reports how many certificates m holds in memory, for tests.
func CacheLen(m *Manager) int { return m.cache.len() }

// SweepExpired runs the expired-certificate sweep now, contained as the
// housekeeping goroutine runs it, for tests.
func SweepExpired(m *Manager, ctx context.Context) {
	_ = m.init()
	for range 10_000 { // batches of sweepBatch keys: a whole pass
		wrapped := true
		m.guard("housekeeping", slog.String("step", "sweeping expired certificates"), func() { wrapped = m.sweepExpired(ctx) })
		if wrapped {
			return
		}
	}
}

// Housekeep runs one housekeeping round now, for tests.
func Housekeep(m *Manager, ctx context.Context) {
	_ = m.init()
	m.housekeep(ctx)
}

// IssuerIDs lists the IDs of m's default issuer chain, for tests.
func IssuerIDs(m *Manager) []string {
	_ = m.init()
	var ids []string
	for _, iss := range m.issuers {
		ids = append(ids, iss.ID())
	}
	return ids
}

// WaitRenewalScan waits for m's start-up renewal scan to end, for tests.
func WaitRenewalScan(m *Manager) {
	_ = m.init()
	<-m.renew.scanned
}

// Scheduled reports whether the storage key is scheduled for renewal, and
// when, for tests.
func Scheduled(m *Manager, key string) (time.Time, bool) {
	_ = m.init()
	s := m.scheduler()
	if s == nil {
		return time.Time{}, false
	}
	return s.When(key)
}

// LetGo reports how many certificates m let go as unused and remembers
// (renewer.letGo), for tests.
func LetGo(m *Manager) int {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	return len(m.renew.letGo)
}

// SetUnstoredRetryEvery sets how often m offers a certificate issued and
// not stored to storage again, for tests.
func SetUnstoredRetryEvery(m *Manager, d time.Duration) { m.unstoredEvery = d }

// SetARICheckEvery sets how often m asks the CA for a certificate's
// renewal window (ARI), for tests.
func SetARICheckEvery(m *Manager, d time.Duration) { m.ariEvery = d }

// StopChallengeLookups leaves m no storage reads for validation requests
// naming a challenge no node announced, so a test sees that an announced
// one is answered through its notice alone.
func StopChallengeLookups(m *Manager) {
	m.clu.mu.Lock()
	defer m.clu.mu.Unlock()
	m.clu.lookups = rate.NewLimiter(0, 0)
}

// ChallengeLookupBound is the most storage reads a node makes in d for
// validation requests naming challenges nobody announced.
func ChallengeLookupBound(d time.Duration) int {
	return challengeLookupBurst + int(d.Seconds()*challengeLookupRate) + 1
}
