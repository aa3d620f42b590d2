package status_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/status"
)

// TestDirWhere: a stored record is named with its file, a certificate
// file by its key alone.
func TestDirWhere(t *testing.T) {
	where := status.DirWhere("/s")
	if got, want := where("certificates/a.json"), "certificates/a.json (file "+filepath.Join("/s", "certificates", "a.json")+")"; got != want {
		t.Errorf("where = %q, want %q", got, want)
	}
	if got := where("file:/etc/c.pem"); got != "file:/etc/c.pem" {
		t.Errorf("where(file:) = %q", got)
	}
}

// TestEmptyNote: a missing directory is pointed out, differently for the
// default one; a file on the path (which said "certificates appear here")
// too; an existing one or a URL says how certificates get there.
func TestEmptyNote(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir        string
		defaultDir bool
		want       string
	}{
		{missing, true, "nothing was stored as this user"},
		{missing, false, "is --storage right?"},
		{file, false, "is a file, not a directory: is --storage right?"},
		{filepath.Join(file, "s"), false, "is a file, not a directory: is --storage right?"},
		{t.TempDir(), false, "certificates appear here"},
		{"", false, "certificates appear here"},
	} {
		if got := status.EmptyNote(c.dir, c.defaultDir); !strings.Contains(got, c.want) {
			t.Errorf("EmptyNote(%q, %v) = %q, want it to hold %q", c.dir, c.defaultDir, got, c.want)
		}
	}
}

// TestCheckDir: a missing directory or a file is refused, saying which;
// an empty directory is not.
func TestCheckDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(t.TempDir(), "missing"), "the directory does not exist"},
		{file, "is a file, not a directory"},
		{filepath.Join(file, "s"), "is a file, not a directory"},
		{t.TempDir(), ""},
	} {
		err := status.CheckDir(c.dir)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("CheckDir(%q) = %v, want %q", c.dir, err, c.want)
		}
	}
}
