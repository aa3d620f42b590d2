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
