//go:build unix

package certfile

import (
	"io/fs"
	"os"
	"testing"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// TestReplaceKeepsGroupAccess: a renewal keeps what the operator gave the
// files: a key made 0640 for a web server's group (Debian's ssl-cert)
// keeps its group and group-read bit (a migration trial found it 0600
// root:root after a renewal: the server's workers lost it), but never
// gains others' bits (a key left 0644 becomes 0640); new files are 0600
// and 0644.
func TestReplaceKeepsGroupAccess(t *testing.T) {
	d := Dir(t.TempDir())
	key1, chain1 := pair(t, "a.test")
	key2, chain2 := pair(t, "a.test")
	p, err := d.Write("a.test", key1, chain1)
	if err != nil {
		t.Fatal(err)
	}
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65534 // nogroup: root may give any group
	}
	for _, f := range []struct {
		path string
		mode fs.FileMode
	}{{p.Key, 0o644}, {p.Cert, 0o640}} {
		if err := os.Chmod(f.path, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f.path, -1, gid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Write("a.test", key2, chain2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		want fs.FileMode
	}{{p.Key, 0o640}, {p.Cert, 0o640}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if g, _ := fileowner.GID(fi); fi.Mode().Perm() != f.want || g != gid {
			t.Errorf("%s after a renewal: mode %v group %d, want %v group %d", f.path, fi.Mode().Perm(), g, f.want, gid)
		}
	}
}
