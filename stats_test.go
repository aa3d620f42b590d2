package certkeeper_test

import (
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestStatsAtStart: Stats on a Manager that has just started (a /metrics
// scrape at start-up) while its storage scan creates the renewal state.
// Under -race, this caught the scan writing that state without the lock
// Stats reads it under.
func TestStatsAtStart(t *testing.T) {
	for range 20 {
		m := &certkeeper.Manager{Storage: filestore.New(t.TempDir())}
		for range 50 { // scrapes while the scan starts
			if s := m.Stats(); len(s.Certificates) != 0 {
				t.Errorf("a new Manager reports %d certificates", len(s.Certificates))
			}
		}
		m.Close()
	}
}
