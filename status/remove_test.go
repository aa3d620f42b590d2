package status_test

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// TestRemoveOnRedis: on a storage with no files to delete (real Redis),
// Remove takes a certificate away by its name, with its renewal failure,
// a damaged record by its key, and a failing first issuance by its name
// (with the order an issuance cut short left);
// what is not stored is ErrNothingStored. Status then lists what is left.
func TestRemoveOnRedis(t *testing.T) {
	st, err := redisstore.Open("redis://" + testsvc.Redis(t).Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	for _, name := range []string{"gone.test", "kept.test"} {
		if err := m.Cert(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	damaged := "certificates/local/broken.test.json"
	if err := st.Store(t.Context(), damaged, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	failures, _ := json.Marshal(map[string]status.Failure{
		status.FailingKey("never.test", ""): {Names: []string{"never.test"}, Error: "rejected", At: time.Now(), FirstIssue: true},
		"certificates/local/gone.test.json": {Names: []string{"gone.test"}, Error: "CA down", At: time.Now()},
	})
	if err := st.Store(t.Context(), status.FailuresKey, failures); err != nil {
		t.Fatal(err)
	}
	// An order an issuance cut short left for never.test, with its key.
	if err := st.Store(t.Context(), "pending/never.test.json", []byte(`{"names":["never.test"]}`)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		what string
		want []string
	}{
		{"Gone.Test", []string{"certificates/local/gone.test.json"}},
		{damaged, []string{damaged}},
		{"never.test", []string{"pending/never.test.json", "failing/never.test"}},
	} {
		if got, err := status.Remove(t.Context(), st, tt.what); err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Remove(%s) = %v, %v; want %v", tt.what, got, err, tt.want)
		}
	}
	if _, err := status.Remove(t.Context(), st, "gone.test"); !errors.Is(err, status.ErrNothingStored) {
		t.Errorf("Remove of a name removed already: %v, want ErrNothingStored", err)
	}
	certs, err := status.Read(t.Context(), st, time.Now())
	if err != nil || len(certs) != 1 || certs[0].Names[0] != "kept.test" {
		t.Errorf("status after Remove = %+v (%v); want kept.test alone", certs, err)
	}
	_, left, err := status.LoadState(t.Context(), st)
	if err != nil || len(left) != 0 {
		t.Errorf("failures left = %v (%v); want none", left, err)
	}
}
