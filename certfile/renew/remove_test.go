package renew

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/storage"
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
	removed, err := Remove(t.Context(), dir, "*.b.test", nil)
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
	if _, err := Remove(t.Context(), dir, "*.b.test", nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Remove of a name not there: %v, want fs.ErrNotExist", err)
	}
	if _, err := Remove(t.Context(), dir, "../a.test", nil); err == nil {
		t.Error("Remove took a name outside the directory")
	}
}

// TestRemoveStored: Remove with a storage takes the stored copy of the
// very certificate in the files (the one cert issue kept), and leaves a
// newer one a Manager on that storage stored since.
func TestRemoveStored(t *testing.T) {
	e := newLocal(t, []string{"a.test"}, []string{"b.test"})
	if _, err := e.r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	aKey, _ := storage.CertificateKey("local", "a.test")
	if removed, err := Remove(t.Context(), e.r.Dir, "a.test", e.st); err != nil || !slices.Contains(removed, aKey) {
		t.Fatalf("Remove(a.test) = %v, %v; want %s among them", removed, err, aKey)
	}
	if _, err := e.st.Load(t.Context(), aKey); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stored copy of a.test is still there (%v)", err)
	}

	p, err := e.r.Dir.Paths("b.test")
	if err != nil {
		t.Fatal(err)
	}
	oldCert, _ := os.ReadFile(p.Cert)
	oldKey, _ := os.ReadFile(p.Key)
	e.r.Force, e.r.Want = true, nil
	if _, err := e.r.Run(t.Context()); err != nil { // storage now holds a newer b.test
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Cert, oldCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Key, oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	bKey, _ := storage.CertificateKey("local", "b.test")
	if removed, err := Remove(t.Context(), e.r.Dir, "b.test", e.st); err != nil || slices.Contains(removed, bKey) {
		t.Fatalf("Remove(b.test) = %v, %v; want the newer stored copy kept", removed, err)
	}
	if _, err := e.st.Load(t.Context(), bKey); err != nil {
		t.Errorf("the newer stored copy of b.test went: %v", err)
	}
}
