//go:build unix

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
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
	// --force: hooks alone do not make a new certificate (the run would
	// keep it, remembering them).
	r = issue("--force", "--deploy-hook", `echo "reloaded $CERTKEEPER_NAME"; echo second line >&2`, "--post-hook", "true")
	if r.code != 0 || !strings.Contains(r.stderr, "certkeeper: the deploy hook for localhost printed:\n    reloaded localhost\n    second line\n") ||
		strings.Contains(r.stderr, "post-hook printed") {
		t.Errorf("a deploy hook that prints: exit %d, stderr %q; want its two lines shown, and nothing for a silent post-hook", r.code, r.stderr)
	}

	before, _ := os.ReadFile(filepath.Join(out, "certs", "localhost.pem"))
	r = issue("--force", "--pre-hook", "exit 3")
	after, _ := os.ReadFile(filepath.Join(out, "certs", "localhost.pem"))
	if r.code != 1 || !strings.Contains(r.stderr, "--pre-hook failed, nothing issued") || string(before) != string(after) {
		t.Errorf("failing pre-hook: exit %d, stderr %q, certificate changed: %v", r.code, r.stderr, string(before) != string(after))
	}

	os.Remove(log)
	r = issue("--force", "--pre-hook", "", "--deploy-hook", "echo no reload; exit 4", "--post-hook", "echo post >> "+log)
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
		r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", tt.outDir, "--storage", st, "--force",
			"--pre-hook", tt.pre, "--post-hook", "echo post >> "+log)
		if got, _ := os.ReadFile(log); r.code != 1 || string(got) != "pre\npost\n" {
			t.Errorf("%s: exit %d, hooks wrote %q; want 1 and the post-hook run after the pre-hook\n%s", tt.name, r.code, got, r.stderr)
		}
	}
}

// TestIssueDeployHookRetried: a deploy hook that fails after cert issue
// wrote the files is run again by the next cert issue with the same flags
// (which keeps the certificate) or cert renew (which leaves it, not due),
// until it succeeds; a trial's failed hook was never run again, and the
// server went on serving the old certificate.
func TestIssueDeployHookRetried(t *testing.T) {
	dir := t.TempDir()
	log, ok := filepath.Join(dir, "hooks.log"), filepath.Join(dir, "ok")
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	marker := filepath.Join(out, "renewal", "localhost.deploy-pending")
	issue := func(extra ...string) result {
		args := append([]string{"cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", out, "--storage", st,
			"--deploy-hook", "test -e " + ok + " || exit 4; echo deployed >> " + log}, extra...)
		return ck(t, 30*time.Second, args...)
	}
	deployed := func() int {
		got, _ := os.ReadFile(log)
		return strings.Count(string(got), "deployed\n")
	}
	if r := issue(); r.code != 1 || !strings.Contains(r.stderr, "runs the deploy hook again") {
		t.Fatalf("a failing deploy hook: exit %d, want 1 saying it is run again\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no mark of the failed deploy hook: %v", err)
	}
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := issue()
	if r.code != 0 || !strings.Contains(r.stdout, "kept localhost") || deployed() != 1 {
		t.Fatalf("cert issue again: exit %d, %d deployments; want the certificate kept and its hook run once\n%s%s", r.code, deployed(), r.stdout, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the mark is left after the deploy hook succeeded")
	}
	if r := issue(); r.code != 0 || deployed() != 1 {
		t.Errorf("cert issue a third time ran the deploy hook again (exit %d, %d deployments)", r.code, deployed())
	}
	os.Remove(ok)
	if r := issue("--force"); r.code != 1 {
		t.Fatalf("a failing deploy hook after --force: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "cert", "renew", "--out-dir", out, "--storage", st)
	if r.code != 0 || !strings.Contains(r.stdout, "deployed") || deployed() != 2 {
		t.Errorf("cert renew after a failed deploy hook: exit %d, %d deployments; want it run again\n%s%s", r.code, deployed(), r.stdout, r.stderr)
	}
}

// TestIssueWaitsSaid: a cert issue that finds another run on its
// --out-dir says it waits for it, and if its --timeout ends first, says
// that other run held the directory (a CLI trial's waited in silence,
// then failed naming the lock's key and "context deadline exceeded").
func TestIssueWaitsSaid(t *testing.T) {
	dir := t.TempDir()
	out, st, started := filepath.Join(dir, "out"), filepath.Join(dir, "st"), filepath.Join(dir, "started")
	first := exec.Command(binary, "cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", out, "--storage", st,
		"--pre-hook", "touch "+started+"; sleep 4")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Wait()
	defer first.Process.Kill()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		} else if time.Now().After(end) {
			t.Fatal("the first run's pre-hook did not start within 10 s")
		}
	}
	r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "localhost", "--out-dir", out, "--storage", st, "--timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stderr, "certkeeper: waiting for another certkeeper run on "+out+" (cert issue or cert renew) to end (--timeout 2s)\n") ||
		!strings.Contains(r.stderr, "another certkeeper run on "+out+" (cert issue or cert renew) still held it when this one gave up") {
		t.Errorf("a run that waits for another: exit %d, want 1 saying it waits and why it gave up\n%s", r.code, r.stderr)
	}
}

// TestInterruptKillsHook: SIGINT or SIGTERM to cert issue while its
// pre-hook runs kills the hook with what it started (the hook runs in a
// process group of its own, which a terminal's Ctrl-C no longer reaches:
// certkeeper kills it), and the error ends with how the hook ended, not
// an empty ": " for the output it did not print.
func TestInterruptKillsHook(t *testing.T) {
	for _, tt := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pid")
			cmd := exec.CommandContext(t.Context(), binary, "cert", "issue", "--ca", "local", "-d", "localhost",
				"--out-dir", filepath.Join(dir, "out"), "--storage", filepath.Join(dir, "st"),
				"--pre-hook", `sleep 30 & echo $! > `+pidFile+`; wait`)
			stderr, done := startWatched(t, cmd)
			child := testsvc.ReadPID(t, pidFile, 30*time.Second)
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("cert issue did not stop within 30s of %v:\n%s", tt.sig, stderr.String())
			}
			testsvc.WaitExited(t, child, 5*time.Second)
			if code := cmd.ProcessState.ExitCode(); code != tt.want {
				t.Errorf("exit status %d after %v, want %d\nstderr:\n%s", code, tt.sig, tt.want, stderr.String())
			}
			if got := stderr.String(); !strings.Contains(got, "interrupted: --pre-hook failed, nothing issued: ") ||
				!strings.Contains(got, ": signal: killed\n") {
				t.Errorf("stderr = %q, want the pre-hook interrupted, ending with \": signal: killed\" and no separator after it", got)
			}
		})
	}
}
