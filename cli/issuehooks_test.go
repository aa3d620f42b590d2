//go:build unix

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIssueHooks: cert issue runs --pre-hook before issuing, then
// --deploy-hook with the certificate's names and files in its
// environment, then --post-hook, and remembers all three for cert renew
// (certbot's certonly --deploy-hook); a failing pre-hook issues nothing,
// a failing deploy hook exits 1 saying the files are written, after
// the post-hook has run; what a hook that succeeds prints is shown.
func TestIssueHooks(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "hooks.log")
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	issue := func(extra ...string) result {
		args := append([]string{"cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", out, "--storage", st}, extra...)
		return ck(t, 30*time.Second, args...)
	}
	r := issue("--pre-hook", "echo pre >> "+log,
		"--deploy-hook", `echo "deploy $CERTKEEPER_NAME $CERTKEEPER_CERT_FILE $CERTKEEPER_KEY_FILE" >> `+log,
		"--post-hook", "echo post >> "+log)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	got, _ := os.ReadFile(log)
	want := "pre\ndeploy localhost " + filepath.Join(out, "certs", "localhost.pem") + " " + filepath.Join(out, "private", "localhost.key") + "\npost\n"
	if string(got) != want {
		t.Errorf("hooks ran as\n%s\nwant\n%s", got, want)
	}
	conf, _ := os.ReadFile(filepath.Join(out, "renewal", "localhost.conf"))
	for _, key := range []string{"pre_hook = ", "deploy_hook = ", "post_hook = "} {
		if !strings.Contains(string(conf), key) {
			t.Errorf("renewal settings lack %s:\n%s", key, conf)
		}
	}

	// What a hook that succeeds prints is shown, as certbot shows it.
	r = issue("--deploy-hook", `echo "reloaded $CERTKEEPER_NAME"; echo second line >&2`, "--post-hook", "true")
	if r.code != 0 || !strings.Contains(r.stderr, "certkeeper: the deploy hook for localhost printed:\n    reloaded localhost\n    second line\n") ||
		strings.Contains(r.stderr, "post-hook printed") {
		t.Errorf("a deploy hook that prints: exit %d, stderr %q; want its two lines shown, and nothing for a silent post-hook", r.code, r.stderr)
	}

	before, _ := os.ReadFile(filepath.Join(out, "certs", "localhost.pem"))
	r = issue("--pre-hook", "exit 3")
	after, _ := os.ReadFile(filepath.Join(out, "certs", "localhost.pem"))
	if r.code != 1 || !strings.Contains(r.stderr, "--pre-hook failed, nothing issued") || string(before) != string(after) {
		t.Errorf("failing pre-hook: exit %d, stderr %q, certificate changed: %v", r.code, r.stderr, string(before) != string(after))
	}

	os.Remove(log)
	r = issue("--deploy-hook", "echo no reload; exit 4", "--post-hook", "echo post >> "+log)
	if r.code != 1 || !strings.Contains(r.stderr, "the certificate files are written, but: deploy hook") || !strings.Contains(r.stderr, "no reload") {
		t.Errorf("failing deploy hook: exit %d, stderr %q", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(log); string(got) != "post\n" {
		t.Errorf("after a failing deploy hook the post-hook wrote %q, want it run", got)
	}

	// The post-hook undoes the pre-hook (a web server stopped for port
	// 80): it runs when the pre-hook or the issuance fails too.
	for _, tt := range []struct{ name, pre, outDir string }{
		{"failing pre-hook", "echo pre >> " + log + "; exit 3", out},
		{"failing issuance", "echo pre >> " + log, filepath.Join(log, "not-a-dir")},
	} {
		os.Remove(log)
		r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", tt.outDir, "--storage", st,
			"--pre-hook", tt.pre, "--post-hook", "echo post >> "+log)
		if got, _ := os.ReadFile(log); r.code != 1 || string(got) != "pre\npost\n" {
			t.Errorf("%s: exit %d, hooks wrote %q; want 1 and the post-hook run after the pre-hook\n%s", tt.name, r.code, got, r.stderr)
		}
	}
}
