//go:build unix

package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRenewOtherUser: cert renew run by a user who cannot look into
// private/ fails, naming the pair and what to do, instead of taking the
// certificates for keyless ones and renewing nothing with exit 0. As root
// the run is made as nobody (uid 65534); as another user, private/ is
// made unreadable to that user.
func TestRenewOtherUser(t *testing.T) {
	dir, err := os.MkdirTemp("", "ck-renew-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "out", "private"), 0o700); os.RemoveAll(dir) })
	out, st, st2 := filepath.Join(dir, "out"), filepath.Join(dir, "st"), filepath.Join(dir, "st2")
	if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "a.test", "--out-dir", out, "--storage", st); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	// The run as the other user copies the binary where that user may run
	// it, and gets a storage directory it may write (the certificate
	// files' lock lives there).
	bin := filepath.Join(dir, "certkeeper")
	copyFile(t, binary, bin)
	for _, d := range []string{dir, out} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(st2, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(st2, 0o777); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "cert", "renew", "--force", "--ca", "local", "--out-dir", out, "--storage", st2)
	mode := os.FileMode(0o710) // nobody is not in root's group: no search permission
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		mode = 0
	}
	if err := os.Chmod(filepath.Join(out, "private"), mode); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("cert renew as another user: %v, want exit 1\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	for _, w := range []string{"a.test", "unparsable", "permission denied", "run as the user who owns " + out} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
		}
	}
	if w := "1 of 1 certificates failed or could not be read"; !strings.Contains(stderr.String(), w) {
		t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
	}
}

// copyFile copies the executable src to dst, mode 0755.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, in); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
