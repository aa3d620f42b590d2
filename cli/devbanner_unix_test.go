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
