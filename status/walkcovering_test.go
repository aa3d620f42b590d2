package status_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/statusfill"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestWalkCovering: the walk of "certkeeper status NAME" yields the
// records that cover NAME and those whose names cannot be read (they may
// be NAME's), but not a damaged record whose names say it is another
// name's, nor any other record; without names it is Walk.
func TestWalkCovering(t *testing.T) {
	dir := t.TempDir()
	if err := statusfill.Fill(dir, 5, nil, ""); err != nil {
		t.Fatal(err)
	}
	keys, err := filepath.Glob(filepath.Join(dir, "certificates", "*", statusfill.Name(4)+".json"))
	if err != nil || len(keys) != 1 {
		t.Fatalf("the record of %s: %v %v", statusfill.Name(4), keys, err)
	}
	data, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	// Its names and dates read, its chain does not: damaged, and not
	// Name(1)'s.
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	rec["chain_pem"] = []byte("not a PEM chain")
	if data, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keys[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(keys[0]), "broken.test.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := filestore.New(dir)
	walk := func(names ...string) (got []string) {
		t.Helper()
		err := status.WalkCovering(t.Context(), st, time.Now(), names, func(c status.Cert) error {
			label := c.State + ":" + filepath.Base(c.Key)
			got = append(got, label)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	for _, tt := range []struct {
		names []string
		want  []string
	}{
		{[]string{statusfill.Name(1)}, []string{"damaged:broken.test.json", "fine:" + statusfill.Name(1) + ".json"}},
		{[]string{statusfill.Name(4)}, []string{"damaged:broken.test.json", "damaged:" + statusfill.Name(4) + ".json"}},
		{[]string{statusfill.Name(0), statusfill.Name(2)}, []string{"damaged:broken.test.json", "fine:" + statusfill.Name(0) + ".json", "fine:" + statusfill.Name(2) + ".json"}},
		{nil, []string{"damaged:broken.test.json", "damaged:" + statusfill.Name(4) + ".json", "fine:" + statusfill.Name(0) + ".json",
			"fine:" + statusfill.Name(1) + ".json", "fine:" + statusfill.Name(2) + ".json", "fine:" + statusfill.Name(3) + ".json"}},
	} {
		if got := walk(tt.names...); !slices.Equal(got, tt.want) {
			t.Errorf("WalkCovering(%v) = %v, want %v", tt.names, got, tt.want)
		}
	}
}
