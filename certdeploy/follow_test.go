package certdeploy

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestFollow: a certificate the Manager obtains after Follow started is
// deployed without another call, and stop returns once the goroutine has
// ended.
func TestFollow(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	dir := t.TempDir()
	d := &Deployer{Format: PEM, Dir: dir}
	stop := d.Follow(t.Context(), m, st)
	if err := m.Cert(t.Context(), "follow.test"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "follow.test", "fullchain.pem")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(file); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not deployed within 10 s of the certificate being obtained", file)
		}
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return within 10 s")
	}
}

// onceFailing writes a shell script that fails (printing "transient") the
// first time it runs and succeeds after, and returns its path.
func onceFailing(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	body := "#!/bin/sh\nif [ -e " + filepath.Join(dir, "ran") + " ]; then exit 0; fi\n" +
		"touch " + filepath.Join(dir, "ran") + "\necho transient\nexit 1\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

// TestFollowRetries: a deployment whose check fails once (a real hook
// script) is logged with the time of its retry and deployed by the retry,
// with no other issuance to set it off.
func TestFollowRetries(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	if err := m.Cert(t.Context(), "retry.test"); err != nil {
		t.Fatal(err)
	}
	var logs testsvc.Buffer
	dir := t.TempDir()
	d := &Deployer{Format: PEM, Dir: dir, Check: onceFailing(t), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		retryFirst: 50 * time.Millisecond, retryMax: time.Second}
	stop := d.Follow(t.Context(), m, st)
	defer stop()
	// The files exist while the check runs: the log says when they stay.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "certificates deployed"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not deployed within 10 s of a check that failed once; log:\n%s", logs.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "retry.test", "fullchain.pem")); err != nil {
		t.Error(err)
	}
	if l := logs.String(); !strings.Contains(l, "will be retried") || !strings.Contains(l, "retry_at=") || !strings.Contains(l, "transient") {
		t.Errorf("log does not say when the failed deployment is retried:\n%s", l)
	}
}

// TestReloadRetried: after a reload that failed, the next Deploy runs the
// reload again although no file changed, so a retry gets the server the
// files it was meant to read; once it passed, it is not run again.
func TestReloadRetried(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	c := issue(t, ca, "reload.test")
	runs := filepath.Join(t.TempDir(), "runs")
	// Fails the first time it runs.
	d := &Deployer{Format: PEM, Dir: t.TempDir(), Reload: "echo run >> " + runs + "; [ $(wc -l < " + runs + ") -gt 1 ]"}
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{c}); err == nil || !strings.Contains(err.Error(), "reload command failed") {
		t.Fatalf("Deploy with a failing reload = %v, want the reload's error", err)
	}
	for i, want := range []int{2, 2} {
		if changed, err := d.Deploy(t.Context(), []*storage.Certificate{c}); err != nil || changed {
			t.Fatalf("Deploy %d of the same files = %v, %v; want unchanged, no error", i+2, changed, err)
		}
		if n := strings.Count(string(mustRead(t, runs)), "run"); n != want {
			t.Errorf("after Deploy %d the reload ran %d times, want %d", i+2, n, want)
		}
	}
}

// TestRetryBackoff: the waits between retries of a deployment that keeps
// failing double up to the cap; a new certificate starts them again, and
// a success ends them.
func TestRetryBackoff(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	if _, err := certkeeper.Issue(t.Context(), st, certkeeper.IssueRequest{Names: []string{"b.test"}, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{ca}}}); err != nil {
		t.Fatal(err)
	}
	d := &Deployer{Format: PEM, Dir: t.TempDir(), Check: "exit 1", Logger: slog.New(slog.DiscardHandler),
		retryFirst: time.Minute, retryMax: 5 * time.Minute}
	r := &retrier{d: d}
	defer r.stop()
	for i, step := range []struct {
		fresh bool
		want  time.Duration
	}{{true, time.Minute}, {false, 2 * time.Minute}, {false, 4 * time.Minute}, {false, 5 * time.Minute}, {false, 5 * time.Minute}, {true, time.Minute}} {
		r.deploy(t.Context(), st, step.fresh)
		if r.wait != step.want || r.due == nil {
			t.Fatalf("failure %d (fresh %v): wait %v, retry due %v; want %v", i+1, step.fresh, r.wait, r.due != nil, step.want)
		}
	}
	d.Check = ""
	r.deploy(t.Context(), st, false)
	if r.wait != 0 || r.due != nil {
		t.Errorf("after a success: wait %v, retry due %v; want none", r.wait, r.due != nil)
	}
}
