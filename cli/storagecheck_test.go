package cli

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestStorageNotWritable: proxy and server refuse at once a --storage
// directory this user may not read and write, naming --storage and the
// fix, rather than starting and failing at the first handshake.
func TestStorageNotWritable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("directory modes are Unix's")
	}
	dir := filepath.Join(t.TempDir(), "storage")
	if err := os.Mkdir(dir, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if f, err := os.CreateTemp(dir, "probe"); err == nil {
		f.Close()
		t.Skipf("running as root (euid %d), which bypasses directory permissions: run the tests as a user to check a --storage of mode 000", os.Geteuid())
	}
	for _, args := range [][]string{
		{"server", "--storage", dir, "--listen", "127.0.0.1:0", "--no-auth", "--ca", "local", "--allow", "a.test"},
		{"proxy", "--storage", dir, "--tls-addr", "127.0.0.1:0", "--ca", "local", "--allow", "a.test"},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1\nstderr:\n%s", args[0], r.code, r.stderr)
		}
		for _, w := range []string{"--storage " + dir + ": this user cannot read and write it", "permission denied", "chown -R", "chmod 700"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", args[0], w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "listening on") {
			t.Errorf("%s: started listening with a storage it cannot use:\n%s", args[0], r.stderr)
		}
	}
}
