package certkeeper

import (
	"fmt"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/status"
)

// TestPruneFirstIssues: first-issue failures are capped (the oldest go
// first) and expire; renewal failures are kept.
func TestPruneFirstIssues(t *testing.T) {
	now := time.Now()
	all := map[string]status.Failure{"certificates/x/a.json": {Names: []string{"a"}, At: now.Add(-30 * 24 * time.Hour)}}
	for i := range maxFirstIssueFailures + 10 {
		name := fmt.Sprintf("n%d.test", i)
		all[status.FailingKey(name, "")] = status.Failure{Names: []string{name}, At: now.Add(time.Duration(i) * time.Second), FirstIssue: true}
	}
	all[status.FailingKey("old.test", "")] = status.Failure{Names: []string{"old.test"}, At: now.Add(-firstIssueFailureKeep - time.Hour), FirstIssue: true}
	pruneFirstIssues(all, now.Add(time.Hour))
	if len(all) != maxFirstIssueFailures+1 {
		t.Errorf("%d entries kept, want %d first issues and the renewal", len(all), maxFirstIssueFailures)
	}
	for _, gone := range []string{"old.test", "n0.test", "n9.test"} {
		if _, ok := all[status.FailingKey(gone, "")]; ok {
			t.Errorf("%s kept; want it dropped (expired, or among the oldest beyond the cap)", gone)
		}
	}
	if _, ok := all[status.FailingKey("n10.test", "")]; !ok {
		t.Error("n10.test dropped; want the newest kept")
	}
	if _, ok := all["certificates/x/a.json"]; !ok {
		t.Error("a renewal failure was dropped")
	}
}
