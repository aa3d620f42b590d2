package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRenewQuiet: cert renew --quiet (certbot's -q, from cron, which mails
// any output) prints nothing when all is well, not even the note for
// certbot's spelling, and everything, on stderr, when something fails.
func TestRenewQuiet(t *testing.T) {
	dir := t.TempDir()
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", out, "--storage", st); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	r := ck(t, 30*time.Second, "cert", "renew", "-q", "--out-dir", out, "--storage", st)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("cert renew -q with nothing due: exit %d, stdout %q, stderr %q; want exit 0 and no output", r.code, r.stdout, r.stderr)
	}
	r = ck(t, 30*time.Second, "cert", "renew", "--quiet", "--force", "--out-dir", out, "--storage", st)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("cert renew --quiet --force: exit %d, stdout %q, stderr %q; want exit 0 and no output", r.code, r.stdout, r.stderr)
	}
	r = ck(t, 30*time.Second, "cert", "renew", "--quiet", "--force", "--webroot", filepath.Join(dir, "missing"), "--out-dir", out, "--storage", st)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "localhost    failed") || !strings.Contains(r.stderr, "1 of 1 certificates failed") {
		t.Errorf("cert renew --quiet with a failure: exit %d, stdout %q, stderr %q; want exit 1 and the summary on stderr", r.code, r.stdout, r.stderr)
	}
}

// TestRenewPostHookAfterTimeout: a cert renew that runs past --timeout
// after its pre-hook (or is interrupted) still runs the post-hook, which
// stops what the pre-hook started (an alpn-proxy trial's proxy and its
// iptables redirect stayed up for good after a SIGTERM).
func TestRenewPostHookAfterTimeout(t *testing.T) {
	dir := t.TempDir()
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", out, "--storage", st); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	pre, post := filepath.Join(dir, "pre"), filepath.Join(dir, "post")
	r := ck(t, time.Minute, "cert", "renew", "--force", "--timeout", "2s", "--out-dir", out, "--storage", st,
		"--pre-hook", "touch "+pre+"; sleep 5", "--post-hook", "touch "+post)
	if _, err := os.Stat(pre); err != nil {
		t.Fatalf("the pre-hook did not run: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if _, err := os.Stat(post); err != nil || r.code == 0 {
		t.Errorf("cert renew past --timeout after its pre-hook: exit %d, post-hook ran: %v; want a failure, and the post-hook run\n%s%s", r.code, err == nil, r.stdout, r.stderr)
	}
}
