//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
)

// TestIssueDryRun: cert issue --dry-run validates the names and gets a
// test certificate from the CA (Pebble here; Let's Encrypt's staging CA
// for Let's Encrypt), and writes nothing: no files, no storage, no
// renewal settings, no deploy hook; the post-hook runs.
func TestIssueDryRun(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	out, st, log := filepath.Join(dir, "out"), filepath.Join(dir, "st"), filepath.Join(dir, "hooks.log")
	args := append(pebbleArgs(ca, st, out), "--dry-run", "-d", "a.test",
		"--deploy-hook", "echo deploy >> "+log, "--post-hook", "echo post >> "+log)
	r := ck(t, time.Minute, args...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "dry run: a.test validated, a test certificate issued by ") {
		t.Fatalf("exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	for _, p := range []string{out, st} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a dry run (%v)", p, err)
		}
	}
	if got, _ := os.ReadFile(log); string(got) != "post\n" {
		t.Errorf("hooks ran %q, want only the post-hook", got)
	}
	f := &issueFlags{}
	cleanup, err := f.dryRunSetup()
	if err != nil {
		t.Fatal(err)
	}
	if f.ca() != "staging" {
		t.Errorf("a dry run against the default CA uses %q, want staging", f.ca())
	}
	tmp := filepath.Dir(f.Storage)
	if err := os.MkdirAll(f.Storage, 0o700); err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the dry run's temporary directory %s is left (%v)", tmp, err)
	}
}
