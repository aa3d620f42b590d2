//go:build unix

package cli

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRootWritesGivenToOwner: storage import and ca root run as root into
// a storage directory the service's user owns leave it files that user
// reads: what they create is given to the directory's owner (a migration
// trial's service user could no longer read its storage after an import
// as root; a container trial's proxy would not start after ca root run
// with docker exec). The proxy run as that user then starts on it.
func TestRootWritesGivenToOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it is about what root writes into another user's storage")
	}
	dir, err := os.MkdirTemp("", "ck-root-writes") // not t.TempDir(): its parent is root's 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	arc := filepath.Join(t.TempDir(), "state.tar.gz")
	if r := ck(t, 30*time.Second, "storage", "export", "--storage", t.TempDir(), "--out", arc); r.code != 0 {
		t.Fatalf("storage export: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	svc := filepath.Join(dir, "svc")
	if err := os.Mkdir(svc, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(svc, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 30*time.Second, "storage", "import", "--storage", svc, arc); r.code != 0 {
		t.Fatalf("storage import as root into a storage uid 65534 owns: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "ca", "root", "--storage", svc); r.code != 0 {
		t.Fatalf("ca root as root into a storage uid 65534 owns: exit %d\n%s", r.code, r.stderr)
	}
	err = filepath.WalkDir(svc, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if st, ok := mustLstat(t, path).Sys().(*syscall.Stat_t); ok && st.Uid != 65534 {
			t.Errorf("%s is uid %d's, not the storage owner's (65534)", path, st.Uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	bin := filepath.Join(dir, "certkeeper") // where nobody may run it
	copyFile(t, binary, bin)
	cmd := exec.CommandContext(ctx, bin, "proxy", "--check-config", "--ca", "local", "--allow", "a.test", "--storage", svc)
	cmd.Env = append(os.Environ(), "HOME="+svc)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("proxy --check-config as the storage's owner after root's runs: %v\n%s", err, out)
	}
}

// mustLstat is os.Lstat that fails the test on an error.
func mustLstat(t *testing.T, path string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi
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

// TestStorageDirHints: a proxy that cannot use its storage says what to do
// in words that work where the operator pastes them (a container trial):
// with no $HOME and no --storage it refuses the relative default, which a
// container's throwaway layer would lose at each restart; a directory it
// cannot create is to be created for the process's own user, named, not
// chowned before it exists by whoever runs $(id -un).
func TestStorageDirHints(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the binary as another user")
	}
	dir, err := os.MkdirTemp("", "ck-storage-hints") // not t.TempDir(): its parent is root's 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "certkeeper")
	copyFile(t, binary, bin)
	run := func(args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"proxy", "--allow", "a.test", "--ca", "local", "--tls-addr", "127.0.0.1:0"}, args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin"} // no HOME, no XDG_DATA_HOME
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stderr.String()
	}
	if code, out := run(); code != 2 || !strings.Contains(out, "no --storage, and no $HOME for the default") || !strings.Contains(out, "give --storage DIR") {
		t.Errorf("proxy without --storage or $HOME: exit %d, want 2 and the refusal:\n%s", code, out)
	}
	// --check-config says so too (a container trial's passed it).
	if code, out := run("--check-config"); code != 1 || !strings.Contains(out, "no --storage, and no $HOME for the default") {
		t.Errorf("proxy --check-config without --storage or $HOME: exit %d, want 1 and the refusal:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "certkeeper-data")); err == nil {
		t.Error("./certkeeper-data was created")
	}
	deeper := filepath.Join(dir, "nope", "deeper")
	code, out := run("--storage", deeper)
	if code == 0 || !strings.Contains(out, "sudo install -d -o nobody -m 700 "+deeper) || strings.Contains(out, "$(id -un)") {
		t.Errorf("proxy --storage %s (its parent not creatable): exit %d, want the directory created for nobody:\n%s", deeper, code, out)
	}
}

// TestSecretInSupplementaryGroup: a token file mounted root-owned, mode
// 0440, in a group the server has as a supplementary group (a Kubernetes
// Secret with the pod's fsGroup) is read (a container trial's was refused,
// with advice to do what it had done); one every user may read is refused
// with the chmod that fixes it, and no chgrp, its group being right.
func TestSecretInSupplementaryGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run the binary as another user with another group")
	}
	dir, err := os.MkdirTemp("", "ck-secret-group") // not t.TempDir(): its parent is root's 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, st, tokens := filepath.Join(dir, "certkeeper"), filepath.Join(dir, "st"), filepath.Join(dir, "tokens")
	copyFile(t, binary, bin)
	if err := os.Mkdir(st, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(st, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokens, []byte(serverToken+"\n"), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(tokens, 0, 65533); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode os.FileMode
		want string
	}{{0o440, ""}, {0o444, "lets other users read it"}} {
		if err := os.Chmod(tokens, tc.mode); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, "server", "--check-config", "--ca", "local", "--listen", "127.0.0.1:0", "--token-file", tokens, "--storage", st)
		cmd.Env = append(os.Environ(), "HOME="+st)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{65533}}}
		out, err := cmd.CombinedOutput()
		cancel()
		if tc.want == "" && err != nil {
			t.Errorf("token file root:65533 %04o, the server in group 65533: %v\n%s", tc.mode, err, out)
		}
		if tc.want != "" && (err == nil || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "chmod 440 "+tokens) || strings.Contains(string(out), "chgrp")) {
			t.Errorf("token file root:65533 %04o: %v, want a refusal saying to chmod 440 it (its group is right):\n%s", tc.mode, err, out)
		}
	}
}
