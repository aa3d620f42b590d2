package renew

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewerSettings: each pair renews with its remembered settings and
// Override on top (which is then remembered), pairs with the same issuer
// settings share one chain, and unreadable settings fail their pair
// alone.
func TestRenewerSettings(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	var asked []string
	r := &Renewer{
		Dir: dir, Storage: st,
		Issuers: func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
			asked = append(asked, s.CA)
			return &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}, nil, nil
		},
		Want: [][]string{{"a.test"}, {"b.test"}, {"c.test"}},
	}
	r.Override = Settings{CA: "one"}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{"one"}) {
		t.Errorf("Issuers asked for %q, want one chain for the three certificates", asked)
	}
	path := func(base string) string { return filepath.Join(string(dir), "renewal", base+".conf") }
	if err := SaveSettings(path("b.test"), Settings{CA: "two", PostHook: "true"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path("c.test"), 0o660); err != nil {
		t.Fatal(err)
	}

	asked = nil
	r.Want, r.Force, r.Override = nil, true, Settings{Profile: "p"}
	results, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]Action{}
	for _, j := range results {
		actions[j.Base] = j.Action
	}
	if actions["a.test"] != Renewed || actions["b.test"] != Renewed || actions["c.test"] != Failed {
		t.Errorf("actions %v, want a and b renewed, c failed (group-writable settings)", actions)
	}
	if !slices.Equal(asked, []string{"one", "two"}) {
		t.Errorf("Issuers asked for %q, want one then two", asked)
	}
	for base, want := range map[string]Settings{
		"a.test": {CA: "one", Profile: "p"},
		"b.test": {CA: "two", Profile: "p", PostHook: "true"},
	} {
		if got, err := LoadSettings(path(base)); err != nil || got.CA != want.CA || got.Profile != want.Profile || got.PostHook != want.PostHook {
			t.Errorf("%s settings after the run = %+v, %v; want %+v", base, got, err, want)
		}
	}
}
