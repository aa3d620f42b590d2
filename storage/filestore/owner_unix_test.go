//go:build unix

package filestore

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// TestRootWritesAsOwner: run as root in a directory another user owns (a
// `docker exec`, `sudo certkeeper ca root` on a service's storage), what a
// Store creates there (directories, files, lock leases) is that user's,
// not root's 0600 files and 0700 directories the service cannot read (a
// container trial's proxy would not start after `ca root` as root). In
// root's own directory nothing changes hands.
func TestRootWritesAsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it is about what root writes into another user's directory")
	}
	dir := t.TempDir()
	if err := os.Chown(dir, 65534, 65533); err != nil {
		t.Fatal(err)
	}
	s := New(dir)
	if err := s.Store(t.Context(), "localca/root.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(t.Context(), "issue/a.test")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		uid, _ := fileowner.UID(fi)
		gid, _ := fileowner.GID(fi)
		if uid != 65534 || gid != 65533 {
			t.Errorf("%s is %d:%d, want the directory's owner 65534:65533", path, uid, gid)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 { // dir, localca/, root.json, the lock's directory and lease
		t.Errorf("walked %d paths, want the record, the lease and their directories", n)
	}
	unlock()

	own := t.TempDir()
	if err := New(own).Store(t.Context(), "a/b.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(own, "a", "b.json"))
	if err != nil {
		t.Fatal(err)
	}
	if uid, _ := fileowner.UID(fi); uid != 0 {
		t.Errorf("in root's own directory the record is uid %d's", uid)
	}
}

// TestRootFollowsNoLinksInOthersDir: run as root in a directory another
// user owns, a symbolic link that user made under it is not followed,
// to a directory (root would write there, giving the files to that user)
// or to a file (root would read a root-only file): a security trial had
// root replace a root file outside the storage. In root's own directory
// links are followed as before.
func TestRootFollowsNoLinksInOthersDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it is about what root does in another user's directory")
	}
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	precious := filepath.Join(outside, "local", "a.test.json")
	if err := os.MkdirAll(filepath.Dir(precious), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(precious, []byte("ROOT DATA"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "certificates")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(precious, filepath.Join(dir, "secret.json")); err != nil {
		t.Fatal(err)
	}
	s := New(dir)
	if err := s.Store(t.Context(), "certificates/local/a.test.json", []byte("{}")); err == nil {
		t.Error("Store through a link the directory's owner made: no error")
	}
	if _, err := s.Load(t.Context(), "certificates/local/a.test.json"); err == nil {
		t.Error("Load through a link: no error")
	}
	if _, err := s.Load(t.Context(), "secret.json"); err == nil {
		t.Error("Load of a link to a root file: no error")
	}
	if err := s.Delete(t.Context(), "certificates/local/a.test.json"); err == nil {
		t.Error("Delete through a link: no error")
	}
	if unlock, err := s.Lock(t.Context(), "certificates/x"); err == nil {
		unlock()
	}
	if data, err := os.ReadFile(precious); err != nil || string(data) != "ROOT DATA" {
		t.Errorf("the file the link leads to: %q, %v; want it untouched", data, err)
	}
	// Root's own directory: a link is the operator's, followed.
	own := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(own, "certificates")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(own).Load(t.Context(), "certificates/local/a.test.json"); err != nil {
		t.Errorf("Load through a link in root's own directory: %v", err)
	}
}
