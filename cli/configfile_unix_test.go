//go:build unix

package cli

import (
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
