//go:build unix

package fileowner

import (
	"os"
	"path/filepath"
	"testing"
)

// TestUID: a file this process creates is owned by its effective user.
func TestUID(t *testing.T) {
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	if uid, ok := UID(fi); !ok || uid != os.Geteuid() {
		t.Errorf("UID = %d, %v; want %d, true", uid, ok, os.Geteuid())
	}
}
