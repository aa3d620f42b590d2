package renew

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/certkeeper/certkeeper/certfile"
)

// TestRemove: Remove takes a certificate's files, the previous certificate,
// its settings and its deploy marker out of the directory, leaves the
// others, and says fs.ErrNotExist for a name the directory does not hold.
func TestRemove(t *testing.T) {
	dir := certfile.Dir(t.TempDir())
	files := func(base string) []string {
		return []string{
			filepath.Join(string(dir), "certs", base+".pem"), filepath.Join(string(dir), "certs", base+".pem.old"),
			filepath.Join(string(dir), "private", base+".key"), filepath.Join(string(dir), "renewal", base+".conf"),
			filepath.Join(string(dir), "renewal", base+".deploy-pending"),
		}
	}
	for _, base := range []string{"a.test", "wildcard_b.test"} {
		for _, f := range files(base) {
			if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	removed, err := Remove(dir, "*.b.test")
	if err != nil || len(removed) != 5 {
		t.Fatalf("Remove(*.b.test) = %v, %v; want its 5 files", removed, err)
	}
	for _, f := range files("wildcard_b.test") {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s is still there (%v)", f, err)
		}
	}
	for _, f := range files("a.test") {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("another certificate's %s went: %v", f, err)
		}
	}
	if _, err := Remove(dir, "*.b.test"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a name not there: %v, want fs.ErrNotExist", err)
	}
	if _, err := Remove(dir, "../a.test"); err == nil {
		t.Error("Remove took a name outside the directory")
	}
}
