package certkeeper

// NoticesReceived reports how many storage change notices m has received,
// for tests.
func NoticesReceived(m *Manager) int64 { return m.clu.notices.Load() }
