package renew

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
)

func TestParseGrace(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "0.5d": 12 * time.Hour, "": 0} {
		if got, err := ParseGrace(in); err != nil || got != want {
			t.Errorf("ParseGrace(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"7 days", "-1d", "x"} {
		if _, err := ParseGrace(bad); err == nil {
			t.Errorf("ParseGrace(%q) succeeded", bad)
		}
	}
}

// TestHooks: a pre-hook runs once per run however many certificates have
// it, a deploy hook gets the certificate's environment (absolute paths
// for a relative --out-dir), and a post-hook
// runs once, only for certificates renewed.
func TestHooks(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hooks below are sh")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	appendLog := func(what string) string { return "echo " + what + " >> " + log }
	s := Settings{PreHook: appendLog("pre"), PostHook: appendLog("post"),
		DeployHook: appendLog(`"deploy $CERTKEEPER_NAMES $CERTKEEPER_CERT_FILE $CERTKEEPER_NOT_AFTER [$RENEWED_DOMAINS] $LEGO_CERT_DOMAIN $LEGO_CERT_PATH $LEGO_CERT_KEY_PATH"`)}
	notAfter := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	results := []*Result{
		{Base: "a.test", Names: []string{"a.test", "www.a.test"}, Settings: s, NotAfter: notAfter,
			Paths: certfile.Paths{Cert: "out/certs/a.test.pem", Key: "out/private/a.test.key"}}, // relative: --out-dir out
		{Base: "b.test", Names: []string{"b.test"}, Settings: s}, // not renewed
	}
	var h Hooks
	for _, j := range results {
		if err := h.BeforeRenew(t.Context(), j); err != nil {
			t.Fatalf("BeforeRenew(%s) = %v", j.Base, err)
		}
	}
	if err := h.AfterRenew(t.Context(), results[0]); err != nil {
		t.Fatalf("AfterRenew = %v", err)
	}
	if err := h.Post(t.Context(), results); err != nil {
		t.Fatalf("Post = %v", err)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// The hook gets absolute paths: it may cd elsewhere; and certbot's and
	// lego's variables that mean the same.
	cert, key := filepath.Join(wd, "out/certs/a.test.pem"), filepath.Join(wd, "out/private/a.test.key")
	want := "pre\ndeploy a.test www.a.test " + cert + " 2030-01-02T03:04:05Z [a.test www.a.test] a.test " + cert + " " + key + "\npost\n"
	if string(got) != want {
		t.Errorf("hooks ran\n%s\nwant\n%s", got, want)
	}

	var failing Hooks
	j := &Result{Settings: Settings{PreHook: "exit 1"}}
	for range 2 {
		if err := failing.BeforeRenew(t.Context(), j); err == nil || !strings.Contains(err.Error(), "pre-hook failed") {
			t.Errorf("BeforeRenew with a failing pre-hook = %v", err)
		}
	}
}

// TestHooksPostAfterFailure: a certificate whose renewal was attempted
// and failed gets its post-hook (it may start what the pre-hook stopped);
// one not due does not.
func TestHooksPostAfterFailure(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hooks below are sh")
	}
	log := filepath.Join(t.TempDir(), "log")
	results := []*Result{
		{Names: []string{"failed.test"}, Action: Failed, due: true, Settings: Settings{PostHook: "echo failed >> " + log}},
		{Names: []string{"notdue.test"}, Action: NotDue, Settings: Settings{PostHook: "echo notdue >> " + log}},
	}
	if err := new(Hooks).Post(t.Context(), results); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(log); string(got) != "failed\n" {
		t.Errorf("post-hooks ran %q, want the failed renewal's alone", got)
	}
}

// TestHooksIssued: after one issuance the deploy hook runs, then the
// post-hook, which runs even when the deploy hook fails; both failures
// are reported.
func TestHooksIssued(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the hooks below are sh")
	}
	log := filepath.Join(t.TempDir(), "log")
	j := &Result{Names: []string{"a.test"}, NotAfter: time.Now(),
		Settings: Settings{DeployHook: "echo deploy $CERTKEEPER_NAME >> " + log, PostHook: "echo post >> " + log}}
	if err := new(Hooks).Issued(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(log); string(got) != "deploy a.test\npost\n" {
		t.Errorf("hooks ran %q", got)
	}
	j.Settings = Settings{DeployHook: "exit 2", PostHook: "echo post >> " + log + "; exit 3"}
	err := new(Hooks).Issued(t.Context(), j)
	if err == nil || !strings.Contains(err.Error(), "deploy hook") || !strings.Contains(err.Error(), "post-hook") {
		t.Errorf("Issued with failing hooks = %v, want both named", err)
	}
	if got, _ := os.ReadFile(log); string(got) != "deploy a.test\npost\npost\n" {
		t.Errorf("the post-hook did not run after a failing deploy hook: %q", got)
	}
}
