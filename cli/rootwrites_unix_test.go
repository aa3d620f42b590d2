//go:build unix

package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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

// TestDevBannerSudo: development mode tells a user who is not root to
// trust the local CA with sudo (run here as nobody, uid 65534), and root
// without (TestCheckConfigNoPolicy; a trial saw root told to use sudo).
func TestDevBannerSudo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the binary as another user")
	}
	dir, err := os.MkdirTemp("", "ck-dev-banner")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin, st := filepath.Join(dir, "certkeeper"), filepath.Join(dir, "st")
	copyFile(t, binary, bin)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(st, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(st, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "proxy", "--check-config", "--storage", st)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(), "HOME="+st)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("proxy --check-config as nobody: %v\n%s", err, stderr.String())
	}
	if w := "on this machine with: sudo certkeeper ca trust --storage " + st; !strings.Contains(stderr.String(), w) {
		t.Errorf("development mode as nobody: stderr lacks %q:\n%s", w, stderr.String())
	}
}
