package status_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
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

// TestFailureBeforeObtainedNotShown: a renewal failure recorded before the
// certificate now stored was obtained is not that certificate's (another
// node renewed it since, and the failure's removal was lost): status shows
// it fine, not failing with the old error.
func TestFailureBeforeObtainedNotShown(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	if err := m.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{time.Now().Add(-time.Hour), false}, {time.Now().Add(time.Second), true}} {
		if _, err := status.UpdateFailures(t.Context(), st, func(all map[string]status.Failure) bool {
			all["certificates/local/a.test.json"] = status.Failure{Names: []string{"a.test"}, Error: "CA down", At: tc.at, Attempt: 1}
			return true
		}, nil); err != nil {
			t.Fatal(err)
		}
		for _, read := range []func() ([]status.Cert, error){
			func() ([]status.Cert, error) { return status.Read(t.Context(), st, time.Now()) },
			func() ([]status.Cert, error) {
				var out []status.Cert
				err := status.WalkDates(t.Context(), st, time.Now(), func(c status.Cert) error { out = append(out, c); return nil })
				return out, err
			},
		} {
			certs, err := read()
			if err != nil || len(certs) != 1 {
				t.Fatalf("status: %d certificates, %v", len(certs), err)
			}
			if shown := certs[0].LastError != ""; shown != tc.want {
				t.Errorf("failure recorded at %v (certificate obtained before %v): shown %v, want %v", tc.at, time.Now(), shown, tc.want)
			}
		}
	}
}
