package certkeeper

import (
	"context"
	"log/slog"
)

// CacheLen reports how many certificates m holds in memory, for tests.
func CacheLen(m *Manager) int { return m.cache.len() }

// SweepExpired runs the expired-certificate sweep now, contained as the
// housekeeping goroutine runs it, for tests.
func SweepExpired(m *Manager, ctx context.Context) {
	_ = m.init()
	m.guard("housekeeping", slog.String("step", "sweeping expired certificates"), func() { m.sweepExpired(ctx) })
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
