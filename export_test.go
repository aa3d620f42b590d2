package certkeeper

// CacheLen reports how many certificates m holds in memory, for tests.
func CacheLen(m *Manager) int { return m.cache.len() }
