//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRootWritesWarned: storage import run as root into a storage
// directory the service's user owns says that what it writes is root's,
// and how to give it back (a migration trial's service user could no
// longer read its storage after an import as root); into root's own
// storage it says nothing.
func TestRootWritesWarned(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it is about what root writes into another user's storage")
	}
	dir := t.TempDir()
	arc := filepath.Join(dir, "state.tar.gz")
	if r := ck(t, 30*time.Second, "storage", "export", "--storage", t.TempDir(), "--out", arc); r.code != 0 {
		t.Fatalf("storage export: exit %d\n%s", r.code, r.stderr)
	}
	svc := filepath.Join(dir, "svc")
	if err := os.Mkdir(svc, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(svc, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	r := ck(t, 30*time.Second, "storage", "import", "--storage", svc, arc)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: --storage "+svc+" belongs to ") || !strings.Contains(r.stderr, "chown -R ") {
		t.Errorf("storage import as root into a storage uid 65534 owns: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "storage", "import", "--storage", t.TempDir(), arc); strings.Contains(r.stderr, "belongs to") {
		t.Errorf("into root's own storage it warned:\n%s", r.stderr)
	}
}
