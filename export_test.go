package certkeeper

import "context"

// CacheLen reports how many certificates m holds in memory, for tests.
func CacheLen(m *Manager) int { return m.cache.len() }

// SweepExpired runs the expired-certificate sweep now, for tests.
func SweepExpired(m *Manager, ctx context.Context) {
	_ = m.init()
	m.sweepExpired(ctx)
}
