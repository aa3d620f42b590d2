//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRenewOnly: cert renew -d NAME (certbot's --cert-name) renews that
// certificate alone; a hook given for the run (certbot's --renew-hook)
// changes its remembered settings, and the run says so, unless the hook
// fails; a name that no certificate is for fails, naming it.
func TestRenewOnly(t *testing.T) {
	dir := t.TempDir()
	out, st, log := filepath.Join(dir, "out"), filepath.Join(dir, "st"), filepath.Join(dir, "hook.log")
	for _, n := range []string{"www.one.test", "two.test"} {
		if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", n, "--out-dir", out, "--storage", st); r.code != 0 {
			t.Fatalf("issuing %s: exit %d\n%s", n, r.code, r.stderr)
		}
	}
	r := ck(t, 30*time.Second, "cert", "renew", "--force", "--out-dir", out, "--storage", st,
		"--cert-name", "www.one.test", "--renew-hook", `echo "$CERTKEEPER_NAME" >> `+log)
	if r.code != 0 || !strings.Contains(r.stdout, "one.test") || strings.Contains(r.stdout, "two.test") {
		t.Fatalf("renew --cert-name www.one.test: exit %d, want it alone in the summary\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"--cert-name is certbot's spelling of -d", "--renew-hook is certbot's spelling of --deploy-hook",
		"www.one.test: renewal settings changed: deploy_hook (none) -> "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if got, _ := os.ReadFile(log); string(got) != "www.one.test\n" {
		t.Errorf("the deploy hook wrote %q, want www.one.test alone", got)
	}
	// -d also picks a certificate by a name it covers (www.one.test's
	// apex); this run changes no setting and says nothing of them.
	r = ck(t, 30*time.Second, "cert", "renew", "--force", "--out-dir", out, "--storage", st, "-d", "one.test")
	if r.code != 0 || strings.Contains(r.stdout, "two.test") || strings.Contains(r.stderr, "settings changed") {
		t.Errorf("renew -d one.test: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A deploy hook given for a run that fails is not remembered: the one
	// before it stays.
	r = ck(t, 30*time.Second, "cert", "renew", "--force", "--out-dir", out, "--storage", st, "-d", "www.one.test", "--deploy-hook", "exit 3")
	conf, _ := os.ReadFile(filepath.Join(out, "renewal", "www.one.test.conf"))
	if r.code != 1 || strings.Contains(r.stderr, "settings changed") || !strings.Contains(string(conf), "CERTKEEPER_NAME") {
		t.Errorf("a failing --deploy-hook: exit %d, want 1, no settings changed, and the earlier hook kept:\n%s\n%s", r.code, r.stderr, conf)
	}
	r = ck(t, 30*time.Second, "cert", "renew", "--out-dir", out, "--storage", st, "-d", "three.test")
	if r.code != 1 || !strings.Contains(r.stderr, "no certificate in "+out+" is for three.test") {
		t.Errorf("renew -d three.test: exit %d, want 1 naming it\n%s", r.code, r.stderr)
	}
}
