package cli

import (
	"strings"
	"testing"
	"time"
)

// TestCARootLogging: "ca root" honours the global log flags as every other
// command does. It used to log the creation of the local CA through the
// default logger, at Info under the default warn level and in the log
// package's format whatever --log-format said, so a user piping the root
// into a file saw two stray lines.
func TestCARootLogging(t *testing.T) {
	r := ck(t, 30*time.Second, "ca", "root", "--storage", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stdout, "BEGIN CERTIFICATE") {
		t.Fatalf("ca root: exit %d\n%s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("ca root at the default log level wrote to stderr:\n%s", r.stderr)
	}
	r = ck(t, 30*time.Second, "ca", "root", "--storage", t.TempDir(), "--log-level", "info", "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("ca root --log-level info: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `"msg":"local CA root created"`) {
		t.Errorf("ca root --log-level info --log-format json did not log the CA's creation as JSON:\n%s", r.stderr)
	}
}
