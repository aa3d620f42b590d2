//go:build unix

package fileowner

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOwner: a file this process creates is owned by its effective user,
// and has its effective group or its directory's (a BSD gives a new file
// its directory's group, which a fresh temporary directory has from this
// process too on Linux only).
func TestOwner(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Stat(filepath.Dir(f))
	if err != nil {
		t.Fatal(err)
	}
	if uid, ok := UID(fi); !ok || uid != os.Geteuid() {
		t.Errorf("UID = %d, %v; want %d, true", uid, ok, os.Geteuid())
	}
	want, _ := GID(dir)
	if gid, ok := GID(fi); !ok || gid != want && gid != os.Getegid() {
		t.Errorf("GID = %d, %v; want %d (the directory's) or %d (this process's), true", gid, ok, want, os.Getegid())
	}
}

// TestReadableByAll: o+r is reported with the mode; owner- and
// group-only files, and missing ones, are not.
func TestReadableByAll(t *testing.T) {
	dir := t.TempDir()
	for mode, want := range map[os.FileMode]bool{0o644: true, 0o604: true, 0o640: false, 0o600: false} {
		f := filepath.Join(dir, mode.String())
		if err := os.WriteFile(f, []byte("secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		if got, all := ReadableByAll(f); all != want || got != mode {
			t.Errorf("ReadableByAll(%v) = %v, %v; want %v", mode, got, all, want)
		}
	}
	if _, all := ReadableByAll(filepath.Join(dir, "missing")); all {
		t.Error("a missing file is readable by all")
	}
}
