package certkeeper

import (
	"errors"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestFailureSinceKept: a renewal failing again keeps, in the stored
// failure, when the first failure of the row was (Since), while At is the
// last's: how long renewals have failed survives a restart
// (metrics/TestFailingSecondsAfterRestart reads it).
func TestFailureSinceKept(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	key, names := "certificates/local/s.test.json", []string{"s.test"}
	stored := func(attempt int) status.Failure {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, failures, err := status.LoadState(t.Context(), st); err == nil && failures[key].Attempt == attempt {
				return failures[key]
			}
		}
		t.Fatalf("attempt %d not stored within 5 s", attempt)
		return status.Failure{}
	}
	m.noteRenewal(t.Context(), key, names, errors.New("CA down"), time.Now().Add(time.Minute), 1)
	first := stored(1)
	time.Sleep(10 * time.Millisecond)
	m.noteRenewal(t.Context(), key, names, errors.New("CA still down"), time.Now().Add(time.Minute), 2)
	second := stored(2)
	if !first.Since.Equal(first.At) || !second.Since.Equal(first.At) || !second.At.After(first.At) {
		t.Errorf("failures stored: first since %v at %v, second since %v at %v; want both since the first's at", first.Since, first.At, second.Since, second.At)
	}
}
