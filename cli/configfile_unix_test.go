//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestConfigNotRegular: a --config that is a named pipe or a device is
// refused at once, naming what it is. Read as a file, a pipe hung the
// start (and SIGTERM with it), and /dev/zero ran it out of memory
// (security trial). So is a --token-file named pipe.
func TestConfigNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--config", fifo, "--check-config"}, "is not a regular file but a named pipe"},
		{[]string{"proxy", "--config", "/dev/zero", "--check-config"}, "/dev/zero is not a regular file but a"},
		{[]string{"server", "--token-file", fifo, "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(),
			"--listen", "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))}, "is not a regular file but a named pipe"},
	} {
		start := time.Now()
		r := ck(t, 20*time.Second, tt.args...)
		if r.code == 0 || !strings.Contains(r.stderr, tt.want) || time.Since(start) > 10*time.Second {
			t.Errorf("%s: exit %d after %s, stderr:\n%s\nwant a refusal saying %q at once", strings.Join(tt.args, " "), r.code, time.Since(start).Round(time.Millisecond), r.stderr, tt.want)
		}
	}
}

// TestConfigOthersMayChange: a --config file other users may write, or
// another user owns, is refused: the commands it names (deploy_post_hook,
// alert_exec, dns_exec) run as the proxy's user, and a security trial's
// 0666 file, owned by nobody, had root's proxy run its hook. Root's own
// file, readable by all, is used.
func TestConfigOthersMayChange(t *testing.T) {
	f := writeConfig(t, "allow: a.test\nca: local\nbackend: 127.0.0.1:8080\ndeploy_post_hook: id\n")
	if r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", f); r.code != 0 {
		t.Fatalf("this user's config, mode 0644: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if err := os.Chmod(f, 0o666); err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", f); r.code == 0 || !strings.Contains(r.stderr, "refused, mode 0666 lets other users change it") {
		t.Errorf("a config others may write: exit %d, stderr:\n%s\nwant it refused", r.code, r.stderr)
	}
	if os.Geteuid() != 0 {
		return // the rest gives the file to another user
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", f); r.code == 0 || !strings.Contains(r.stderr, "refused, owned by uid 65534") {
		t.Errorf("a config nobody owns: exit %d, stderr:\n%s\nwant it refused", r.code, r.stderr)
	}
}
