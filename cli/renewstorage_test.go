package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
)

// TestRenewRememberedStorage: cert renew without --storage renews in the
// storage cert issue was given, which the renewal settings remember: a
// certificate of the local CA stays signed by the CA its clients trust
// (trial: a renewal from cron, with another default storage, signed it
// with a new local CA, silently, and clients refused it). Certificates
// that remember different storages are refused, naming them.
func TestRenewRememberedStorage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	run := func(stateDir string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+filepath.Join(dir, stateDir))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			code = -1
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
		}
		return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
	}
	intermediate := func(name string) string {
		t.Helper()
		_, chain, err := certfile.Dir(out).Read(name)
		if err != nil || len(chain) < 2 {
			t.Fatalf("reading %s: %v (%d certificates)", name, err, len(chain))
		}
		return string(chain[1].Raw)
	}
	// A relative --storage, remembered as an absolute path.
	if r := run("state-issue", "cert", "issue", "--ca", "local", "-d", "a.corp", "--storage", "st1", "--out-dir", out); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	before := intermediate("a.corp")
	r := run("state-cron", "cert", "renew", "--force", "--out-dir", out)
	if r.code != 0 || !strings.Contains(r.stderr, "certkeeper: storage "+filepath.Join(dir, "st1")+", which the certificates remember") {
		t.Fatalf("cert renew without --storage: exit %d\n%s", r.code, r.stderr)
	}
	if intermediate("a.corp") != before {
		t.Errorf("the renewed certificate is signed by another local CA than the one in --storage st1")
	}
	if _, err := os.Stat(filepath.Join(dir, "state-cron")); err == nil {
		t.Errorf("cert renew made the default storage %s", filepath.Join(dir, "state-cron"))
	}
	// Another certificate in the same directory, in another storage.
	if r := run("state-issue", "cert", "issue", "--ca", "local", "-d", "b.corp", "--storage", "st2", "--out-dir", out); r.code != 0 {
		t.Fatalf("cert issue b.corp: exit %d\n%s", r.code, r.stderr)
	}
	r = run("state-cron", "cert", "renew", "--force", "--out-dir", out)
	want := "remember different storages: " + filepath.Join(dir, "st1") + " (a.corp); " + filepath.Join(dir, "st2") + " (b.corp): give --storage"
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("cert renew of certificates in two storages: exit %d, want 1 and %q\n%s", r.code, want, r.stderr)
	}
	if r := run("state-cron", "cert", "renew", "--force", "--out-dir", out, "-d", "b.corp"); r.code != 0 || !strings.Contains(r.stderr, "storage "+filepath.Join(dir, "st2")+", which") {
		t.Errorf("cert renew -d b.corp: exit %d, want 0 with st2\n%s", r.code, r.stderr)
	}
}
