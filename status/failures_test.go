package status_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestUpdateFailuresConcurrent: writers updating the stored failures at
// once (two nodes of a cluster) lose none of each other's changes. A soak
// trial's lost removal showed a renewal failing, and alerted on it, after
// another node had renewed the certificate.
func TestUpdateFailuresConcurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for node := range 2 {
		st := filestore.New(dir) // each node its own Store over one directory
		wg.Go(func() {
			for i := range 50 {
				key := fmt.Sprintf("certificates/local/n%d-%d.test.json", node, i)
				if _, err := status.UpdateFailures(t.Context(), st, func(all map[string]status.Failure) bool {
					all[key] = status.Failure{Names: []string{key}, Error: "CA down", At: time.Now()}
					return true
				}, nil); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	all, err := status.UpdateFailures(t.Context(), filestore.New(dir), func(map[string]status.Failure) bool { return false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 100 {
		t.Errorf("%d failures stored by two writers of 50 each, want 100: updates were lost", len(all))
	}
}
