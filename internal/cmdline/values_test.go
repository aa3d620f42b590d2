package cmdline

import (
	"slices"
	"testing"
)

// TestNames: -d takes a name, or several separated by commas as certbot's
// and lego's -d and --domains do; each use adds to the list.
func TestNames(t *testing.T) {
	var n Names
	for _, v := range []string{"a.test", "b.test,www.b.test", " c.test ,d.test", ""} {
		if err := n.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"a.test", "b.test", "www.b.test", "c.test", "d.test", ""}; !slices.Equal(n, want) { // "" for the names' check to refuse
		t.Errorf("Names = %q, want %q", n, want)
	}
}
