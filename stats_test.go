package certkeeper_test

import (
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/status"
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

// TestStatsFailuresAfterRestart: the failures stored by an earlier run
// (what certkeeper status shows failing) are in Stats, and so in the
// failing gauge, from the start, not from the next failure on (trial 13).
func TestStatsFailuresAfterRestart(t *testing.T) {
	st := filestore.New(t.TempDir())
	if _, err := status.UpdateFailures(t.Context(), st, func(all map[string]status.Failure) bool {
		all["certificates/ca/f.test.json"] = status.Failure{Names: []string{"f.test"}, Error: "the CA refused it", At: time.Now()}
		return true
	}, nil); err != nil {
		t.Fatal(err)
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	certkeeper.WaitRenewalScan(m)
	if f, ok := m.Stats().Failures["certificates/ca/f.test.json"]; !ok || f.Error != "the CA refused it" {
		t.Errorf("Stats().Failures = %v after a restart, want the stored failure", m.Stats().Failures)
	}
}
