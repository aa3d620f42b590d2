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
		cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 4096 && exec "$0" "$@"`, binary,
			"proxy", "--allow", "a.example", "--ca", "local", "--tls-addr", "127.0.0.1:0", "--storage", t.TempDir(), "--max-conns", maxConns, "--check-config")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("proxy --check-config --max-conns %s: %v\n%s", maxConns, err, out)
		}
		return string(out)
	}
	const want = "warning: --max-conns 10000: one listener's connections take up to 20000 open files (2 each), but this process may open 4096"
	if out := run("10000"); !strings.Contains(out, want) || !strings.Contains(out, "LimitNOFILE=") {
		t.Errorf("--max-conns 10000 with 4096 open files: output lacks %q:\n%s", want, out)
	}
	if out := run("1000"); strings.Contains(out, "open files") {
		t.Errorf("--max-conns 1000 with 4096 open files warned:\n%s", out)
	}
}
