//go:build unix

package cli

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMaxConnsAboveOpenFiles: a --max-conns that the process's open-file
// limit cannot hold is warned of at start and by --check-config (the
// proxy takes two descriptors per connection); one that fits is not.
// The limit is lowered with the shell's ulimit, as a unit's LimitNOFILE=
// would set it.
func TestMaxConnsAboveOpenFiles(t *testing.T) {
	t.Parallel()
	run := func(maxConns string) string {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		args := []string{"proxy", "--allow", "a.example", "--ca", "local", "--tls-addr", "127.0.0.1:0", "--storage", t.TempDir(), "--check-config"}
		if maxConns != "" {
			args = append(args, "--max-conns", maxConns)
		}
		cmd := exec.CommandContext(ctx, "sh", append([]string{"-c", `ulimit -n 4096 && exec "$0" "$@"`, binary}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("proxy --check-config --max-conns %s: %v\n%s", maxConns, err, out)
		}
		return string(out)
	}
	// The default, which a container's low limit meets with nobody giving
	// --max-conns (a trial).
	if out := run(""); !strings.Contains(out, "warning: --max-conns (default 10000): one listener's connections take up to 20000 open files") {
		t.Errorf("the default --max-conns with 4096 open files: no warning:\n%s", out)
	}
	const want = "warning: --max-conns 10000: one listener's connections take up to 20000 open files (2 each), but this process may open 4096"
	if out := run("10000"); !strings.Contains(out, want) || !strings.Contains(out, "LimitNOFILE=") {
		t.Errorf("--max-conns 10000 with 4096 open files: output lacks %q:\n%s", want, out)
	}
	if out := run("1000"); strings.Contains(out, "open files") {
		t.Errorf("--max-conns 1000 with 4096 open files warned:\n%s", out)
	}
}
