package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// entries returns the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.pem")
	for i, content := range []string{"old", "new", "volatile"} {
		write := WriteFile
		if i == 2 {
			write = WriteFileVolatile
		}
		if err := write(path, []byte(content), 0o644); err != nil {
			t.Fatalf("WriteFile(%q) = %v", content, err)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != content {
			t.Fatalf("ReadFile after WriteFile(%q) = %q, %v", content, got, err)
		}
	}
	if fi, err := os.Stat(path); err != nil {
		t.Fatal(err)
	} else if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644 (not subject to the umask)", fi.Mode().Perm())
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q, want only a.pem", got)
	}
}

// TestWriteFails: an error from write leaves the old file whole and no
// temporary file behind, and is returned as it is.
func TestWriteFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.pem")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o600, func(w io.Writer) error {
		io.WriteString(w, "half")
		return boom
	})
	if err != boom {
		t.Errorf("Write = %v, want the writer's error as it is", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("after a failed Write the file holds %q, want \"old\"", got)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %q, want only a.pem", got)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "b"), nil, 0o600); err == nil {
		t.Error("WriteFile into a missing directory = nil, want an error")
	}
}

func TestTempFile(t *testing.T) {
	dir := t.TempDir()
	for _, base := range []string{"a.pem", strings.Repeat("a", 240)} {
		path := filepath.Join(dir, base)
		tmp, err := TempFile(path, []byte("x"), 0o600)
		if err != nil {
			t.Fatalf("TempFile(%d-byte name) = %v", len(base), err)
		}
		if filepath.Dir(tmp) != dir || !strings.HasPrefix(filepath.Base(tmp), ".") {
			t.Errorf("TempFile(%q) = %q, want a dot file beside it", base, tmp)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if err := SyncDir(dir); err != nil {
			t.Errorf("SyncDir = %v", err)
		}
	}
}

// TestWriteFileGroup: the file arrives with the group asked for and its
// mode; a group this process may not give leaves the old file and no
// temporary one.
func TestWriteFileGroup(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX groups on Windows")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "privkey.pem")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	gid := os.Getegid()
	if os.Geteuid() == 0 {
		gid = 65534 // root may give any group: nogroup
	} else if groups, _ := os.Getgroups(); len(groups) > 0 {
		gid = groups[len(groups)-1]
	}
	if err := WriteFileGroup(path, []byte("new"), 0o640, gid); err != nil {
		t.Fatalf("WriteFileGroup(gid %d) = %v", gid, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := fileowner.GID(fi); !ok || got != gid || fi.Mode().Perm() != 0o640 {
		t.Errorf("after WriteFileGroup(0640, gid %d): mode %v, gid %d", gid, fi.Mode().Perm(), got)
	}
	if os.Geteuid() == 0 {
		return // root may give every group: nothing to refuse
	}
	if err := WriteFileGroup(path, []byte("refused"), 0o640, 0); err == nil {
		t.Fatal("WriteFileGroup to group 0 by a user not in it succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "new" {
		t.Errorf("a refused write changed the file: %q", got)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Errorf("files left: %v", names)
	}
}
