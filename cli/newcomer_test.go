package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// These tests are the mistakes a newcomer makes on a first try: each
// must end with a message that says what is wrong and what to do, not
// with silence, a network error or bad grammar.

// TestRenewNothingThere: cert renew with an --out-dir holding no pairs
// fails saying so (and asks whether --out-dir is right, or names the
// import for certbot's directory, its live/ folder included) instead of printing only a table
// header; one that does not exist (a typo in a crontab) fails, --quiet
// or not: a cron job never renews nothing in silence.
func TestRenewNothingThere(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	r := ck(t, 30*time.Second, "cert", "renew", "--ca", "local", "--out-dir", empty, "--storage", filepath.Join(dir, "st"), "--quiet")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1: a cron job that renews nothing is misconfigured\nstderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "CERTIFICATE") {
		t.Errorf("stdout has an empty summary table:\n%s", r.stdout)
	}
	for _, w := range []string{"nothing to renew", "no certificate pairs", empty, "is --out-dir right?"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	// certbot's own directory: said, with the command that takes it over.
	certbot := filepath.Join(dir, "letsencrypt")
	for _, sub := range []string{"live/a.test", "renewal"} {
		if err := os.MkdirAll(filepath.Join(certbot, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// And its live/ folder, or a lineage in it, where the servers of
	// certbot's users read their certificates (trial 29: "is --out-dir
	// right?" and nothing more).
	for _, out := range []string{certbot, filepath.Join(certbot, "live"), filepath.Join(certbot, "live", "a.test")} {
		r = ck(t, 30*time.Second, "cert", "renew", "--ca", "local", "--out-dir", out, "--storage", filepath.Join(dir, "st"))
		if want := "certkeeper import --from certbot " + certbot + " "; r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("cert renew --out-dir %s: exit %d, stderr %q; want 1 and %q", out, r.code, r.stderr, want)
		}
	}
	typo := filepath.Join(dir, "typo")
	for _, quiet := range []string{"--quiet=false", "--quiet"} {
		r := ck(t, 30*time.Second, "cert", "renew", quiet, "--ca", "local", "--out-dir", typo, "--storage", filepath.Join(dir, "st"))
		if want := "--out-dir " + typo + " does not exist"; r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s with a missing --out-dir: exit %d, stderr %q; want 1 and %q", quiet, r.code, r.stderr, want)
		}
	}
	if _, err := os.Stat(typo); err == nil {
		t.Errorf("cert renew created the missing --out-dir %s", typo)
	}
}

// TestShowMissing: cert show of a name the directory does not hold, or of
// two names, names the directory and what it does hold; of no name, it
// lists them.
func TestShowMissing(t *testing.T) {
	dir := t.TempDir()
	out, _ := issueLocalFiles(t, dir, "a.test", "b.test")
	r := ck(t, 30*time.Second, "cert", "show", "c.test", "--out-dir", out)
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	if w := "no certificate c.test in " + out + ": it holds a.test, b.test"; !strings.Contains(r.stderr, w) {
		t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
	}
	r = ck(t, 30*time.Second, "cert", "show", "c.test", "--out-dir", filepath.Join(dir, "empty"))
	if w := "it holds none (is --out-dir right?)"; r.code != 1 || !strings.Contains(r.stderr, w) {
		t.Errorf("exit %d, want 1 and %q:\n%s", r.code, w, r.stderr)
	}
	// No NAME at all (certbot's certificates lists them): the list, a
	// valid answer (docs/cli.md says so), exit 0; two names are a usage
	// error naming what it holds.
	r = ck(t, 30*time.Second, "cert", "show", "--out-dir", out)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "CERTIFICATE") || !strings.HasPrefix(lines[1], "a.test ") || !strings.HasPrefix(lines[2], "b.test ") {
		t.Errorf("cert show without NAME: exit %d, want 0 and a.test, b.test listed:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = ck(t, 30*time.Second, "cert", "show", "--out-dir", filepath.Join(dir, "empty"))
	if w := "no certificates in " + filepath.Join(dir, "empty"); r.code != 0 || !strings.Contains(r.stdout, w) {
		t.Errorf("cert show without NAME of an empty --out-dir: exit %d, want 0 and %q:\n%s%s", r.code, w, r.stdout, r.stderr)
	}
	r = ck(t, 30*time.Second, "cert", "show", "a.test", "b.test", "--out-dir", out)
	if w := "give one NAME: the first name of the certificate, which names its files; in " + out + " it holds a.test, b.test"; r.code != 2 || !strings.Contains(r.stderr, w) {
		t.Errorf("cert show with two NAMEs: exit %d, want 2 and %q:\n%s", r.code, w, r.stderr)
	}
}

// TestShowFileName: cert show and cert renew -d take a wildcard's file
// name (wildcard_a.test, as cert issue writes it) for *.a.test, and a bad
// NAME is blamed on NAME, not on -d (trial 19).
func TestShowFileName(t *testing.T) {
	dir := t.TempDir()
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "*.a.test", "--out-dir", out, "--storage", st); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "cert", "show", "wildcard_a.test", "--out-dir", out); r.code != 0 || !strings.Contains(r.stdout, "*.a.test") {
		t.Errorf("cert show wildcard_a.test: exit %d, want 0 showing *.a.test\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := ck(t, 30*time.Second, "cert", "renew", "-d", "wildcard_a.test", "--force", "--out-dir", out, "--storage", st); r.code != 0 {
		t.Errorf("cert renew -d wildcard_a.test: exit %d, want 0\n%s", r.code, r.stderr)
	}
	r := ck(t, 30*time.Second, "cert", "show", "a_b.test", "--out-dir", out)
	if r.code != 2 || !strings.Contains(r.stderr, "cert show: NAME: invalid name") {
		t.Errorf("cert show a_b.test: exit %d, stderr %q; want 2 blaming NAME", r.code, r.stderr)
	}
}

// TestAccountNotStored: the account commands that act on an existing
// account say that none is stored (and how to get one) rather than
// asking the CA, which here would be Let's Encrypt over the network;
// and with --ca local they say the local CA has no accounts.
func TestAccountNotStored(t *testing.T) {
	st := filepath.Join(t.TempDir(), "st")
	for _, args := range [][]string{
		{"account", "show"},
		{"account", "show", "--email", "ops@a.test"},
		{"account", "recover", "--email", "ops@a.test"},
		{"account", "rollover", "--email", "ops@a.test"},
		{"account", "deactivate", "--email", "ops@a.test", "--yes"},
		{"account", "update", "--email", "ops@a.test", "--contact", "x@a.test"},
	} {
		r := ck(t, 30*time.Second, append(args, "--storage", st)...)
		if r.code != 1 {
			t.Errorf("%s: exit %d, want 1\nstderr:\n%s", args, r.code, r.stderr)
		}
		for _, w := range []string{"no account for https://acme-v02.api.letsencrypt.org/directory", "is stored in " + st, "account register"} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", args, w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "lookup") {
			t.Errorf("%s: went to the network:\n%s", args, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(st, "accounts")); err == nil {
		t.Errorf("a refused account command stored an account key")
	}
	for _, args := range [][]string{
		{"account", "show", "--ca", "local"},
		{"account", "register", "--ca", "local", "--email", "ops@a.test", "--agree-tos"},
	} {
		r := ck(t, 30*time.Second, append(args, "--storage", st)...)
		if w := "the local CA signs without ACME and has no accounts"; r.code != 2 || !strings.Contains(r.stderr, w) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", args, r.code, w, r.stderr)
		}
	}
}

// TestRevokeLocal: cert revoke --ca local says the local CA does not
// revoke, before it reads anything.
func TestRevokeLocal(t *testing.T) {
	r := ck(t, 30*time.Second, "cert", "revoke", "--ca", "local", "--cert", "a.pem", "--storage", filepath.Join(t.TempDir(), "st"))
	if w := "the local CA publishes no revocation"; r.code != 2 || !strings.Contains(r.stderr, w) {
		t.Errorf("exit %d, want 2 and %q:\n%s", r.code, w, r.stderr)
	}
}

// TestDeployNewcomer: deploy without --format says it is required (and
// lists the formats); one certificate deployed is said in the singular.
func TestDeployNewcomer(t *testing.T) {
	dir := t.TempDir()
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	r := ck(t, 30*time.Second, "deploy", "--out-dir", out, "--storage", st)
	if w := "--format FORMAT is required: haproxy, pem, nginx"; r.code != 2 || !strings.Contains(r.stderr, w) {
		t.Errorf("exit %d, want 2 and %q:\n%s", r.code, w, r.stderr)
	}
	if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "a.test", "--out-dir", filepath.Join(dir, "files"), "--storage", st); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	r = ck(t, 30*time.Second, "deploy", "--format", "pem", "--out-dir", out, "--storage", st)
	if w := "deployed 1 certificate to " + out + " (pem)\n"; r.code != 0 || r.stdout != w {
		t.Errorf("exit %d, stdout %q, want 0 and %q\nstderr:\n%s", r.code, r.stdout, w, r.stderr)
	}
}

// TestIssueNotPublic: cert issue -d localhost (or a .test name, or a
// private address) from Let's Encrypt, the default, is refused before
// anything is asked of the network, pointing at --ca local; the same
// names from another CA are that CA's business.
func TestIssueNotPublic(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-d", "localhost"},
		{"-d", "www.a.test"},
		{"-d", "a.example.com", "-d", "printer.local"},
		{"-d", "192.168.1.2", "--ca", "staging"},
	} {
		r := ck(t, 30*time.Second, append(append([]string{"cert", "issue"}, args...), "--storage", filepath.Join(dir, "st"), "--out-dir", filepath.Join(dir, "out"))...)
		for _, w := range []string{"Let's Encrypt cannot issue for it", "--ca local"} {
			if r.code != 2 || !strings.Contains(r.stderr, w) {
				t.Errorf("%s: exit %d, want 2 and %q:\n%s", args, r.code, w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "lookup") {
			t.Errorf("%s: went to the network:\n%s", args, r.stderr)
		}
	}
	r := ck(t, 30*time.Second, "cert", "issue", "-d", "localhost", "--ca", "local", "--storage", filepath.Join(dir, "st"), "--out-dir", filepath.Join(dir, "out"))
	if r.code != 0 {
		t.Errorf("--ca local -d localhost: exit %d\n%s", r.code, r.stderr)
	}
}

// TestIssueLocalChecksDNS: cert issue --ca local refuses the --dns flags
// a real CA's run refuses (it ignored them, so a rehearsal with the local
// CA passed and the first real run failed), and a --dns-exec program that
// is not there or not executable is refused before any CA is asked.
func TestIssueLocalChecksDNS(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.sh")
	base := []string{"cert", "issue", "-d", "a.test", "--storage", filepath.Join(dir, "st"), "--out-dir", filepath.Join(dir, "out")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--ca", "local", "--dns", "exec", "--dns-exec", missing}, `--dns-exec exec: "` + missing + `": stat ` + missing + `: no such file or directory`},
		{[]string{"--ca", "local", "--dns", "rfc2136"}, "--dns rfc2136 needs --dns-server"},
		{[]string{"--ca", "local", "--dns", "nosuch"}, `--dns "nosuch": use rfc2136, powerdns or exec`},
		{[]string{"--ca", "local", "--dns-setting", "zone=a.test"}, "--dns-setting (dns_setting) needs --dns PROVIDER"},
		// Port 1 of loopback: nothing answers, and nothing is asked.
		{[]string{"--ca", "https://127.0.0.1:1/dir", "--challenge", "dns-01", "--dns", "exec", "--dns-exec", notExec}, `--dns-exec exec: "` + notExec + `": permission denied`},
	} {
		r := ck(t, 30*time.Second, append(base, c.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, want 2 and %q\n%s", c.args, r.code, c.want, r.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); err == nil {
		t.Error("a refused cert issue wrote --out-dir")
	}
}

// TestCertDelete: cert delete (certbot's delete) removes one certificate's
// files, renewal settings and stored copy, after confirmation or with
// --yes (-n), so cert renew no longer renews it and status no longer
// lists it; the others stay and renew.
func TestCertDelete(t *testing.T) {
	out, st := issueLocalFiles(t, t.TempDir(), "a.test", "old.test")
	if r := ck(t, 30*time.Second, "cert", "delete", "old.test", "--out-dir", out, "--storage", st); r.code != 1 || !strings.Contains(r.stderr, "not deleted") {
		t.Fatalf("cert delete unconfirmed: exit %d\n%s", r.code, r.stderr)
	}
	// Without --storage: the one the certificate remembers (a trial's
	// stored copy stayed, in status, when the default was opened).
	r := ck(t, 30*time.Second, "cert", "delete", "old.test", "--out-dir", out, "-n") // certbot's --yes
	if r.code != 0 || strings.Count(r.stdout, "removed ") != 4 || !strings.Contains(r.stderr, "certkeeper: -n is certbot's spelling of --yes\n") ||
		!strings.Contains(r.stderr, "storage "+st+", which the certificate remembers") {
		t.Fatalf("cert delete -n: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := statusOf(t, st); len(got) != 1 || got[0].Names[0] != "a.test" {
		t.Errorf("status after cert delete old.test: %+v, want a.test alone (the stored copy goes too)", got)
	}
	for _, f := range []string{"certs/old.test.pem", "private/old.test.key", "renewal/old.test.conf"} {
		if _, err := os.Stat(filepath.Join(out, f)); err == nil {
			t.Errorf("%s is still there", f)
		}
	}
	renewed := ck(t, time.Minute, "cert", "renew", "--force", "--out-dir", out, "--storage", st)
	if renewed.code != 0 || strings.Contains(renewed.stdout, "old.test") || !strings.Contains(renewed.stdout, "a.test") {
		t.Errorf("cert renew after delete: exit %d\n%s%s", renewed.code, renewed.stdout, renewed.stderr)
	}
	// Without --yes: the missing name is said before any question.
	if r := ck(t, 30*time.Second, "cert", "delete", "old.test", "--out-dir", out, "--storage", st); r.code != 1 ||
		!strings.Contains(r.stderr, "no certificate old.test in "+out+": it holds a.test") || strings.Contains(r.stderr, "Type yes") {
		t.Errorf("cert delete again: exit %d\n%s", r.code, r.stderr)
	}
}

// issueLocalFiles issues each of names from the local CA into DIR/out, with
// DIR/st as the storage, and returns those two.
func issueLocalFiles(t *testing.T, dir string, names ...string) (out, st string) {
	t.Helper()
	out, st = filepath.Join(dir, "out"), filepath.Join(dir, "st")
	for _, name := range names {
		if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", name, "--out-dir", out, "--storage", st); r.code != 0 {
			t.Fatalf("cert issue %s: exit %d\n%s", name, r.code, r.stderr)
		}
	}
	return out, st
}

// TestIssueKept: cert issue run again with the same names and flags keeps
// the certificate that is not due (no order, no hook, exit 0, the same
// serial), as a provisioning script's every run would otherwise order a
// duplicate; --force and certbot's --force-renewal order a new one, and so
// does a changed setting.
func TestIssueKept(t *testing.T) {
	dir := t.TempDir()
	out, st, hooks := filepath.Join(dir, "out"), filepath.Join(dir, "st"), filepath.Join(dir, "hooks")
	args := []string{"cert", "issue", "--ca", "local", "-d", "k.test", "--out-dir", out, "--storage", st, "--deploy-hook", "echo deployed >> " + hooks}
	serial := func() string { return readPair(t, out, "k.test")[0].SerialNumber.String() }
	if r := ck(t, 30*time.Second, args...); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	first := serial()
	r := ck(t, 30*time.Second, args...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kept k.test, not_after ") ||
		!strings.Contains(r.stderr, "already holds this certificate, with these names, CA, account and key type, not due for renewal until ") {
		t.Errorf("cert issue again: exit %d, want 0 and kept\n%s%s", r.code, r.stdout, r.stderr)
	}
	if serial() != first {
		t.Error("cert issue again replaced a certificate that was not due")
	}
	if got := strings.Count(string(mustRead(t, hooks)), "deployed"); got != 1 {
		t.Errorf("the deploy hook ran %d times for one issuance and one kept certificate", got)
	}
	for _, extra := range [][]string{{"--force"}, {"--force-renewal"}, {"--key-type", "rsa2048"}} {
		prev := serial()
		if r := ck(t, 30*time.Second, append(args, extra...)...); r.code != 0 || !strings.HasPrefix(r.stdout, "issued k.test") {
			t.Errorf("cert issue %s: exit %d, want a new certificate\n%s%s", extra, r.code, r.stdout, r.stderr)
		}
		if serial() == prev {
			t.Errorf("cert issue %s kept the certificate", extra)
		}
	}
}

// TestIssueKeptKeyTypeSpellings: certbot's and lego's key type spellings
// are remembered as certkeeper's names (the note says which), so the
// same command with the canonical name, or the canonical command with
// another tool's name, keeps the certificate instead of ordering a
// duplicate (trial: "renewal settings changed: key_type secp384r1 ->
// ecdsa-p384").
func TestIssueKeptKeyTypeSpellings(t *testing.T) {
	dir := t.TempDir()
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	for _, tc := range []struct {
		name          string
		first, second []string
		stored, note  string
	}{
		{"e.test", []string{"--key-type", "ecdsa", "--elliptic-curve", "secp384r1"}, []string{"--key-type", "ecdsa-p384"}, "ecdsa-p384", "--key-type secp384r1 is ecdsa-p384"},
		{"l.test", []string{"--key-type", "ec384"}, []string{"--key-type", "ecdsa-p384"}, "ecdsa-p384", "--key-type ec384 is ecdsa-p384"},
		{"p.test", []string{"--key-type", "ecdsa-p256"}, []string{"--key-type", "ecdsa"}, "ecdsa-p256", ""},
	} {
		args := []string{"cert", "issue", "--ca", "local", "-d", tc.name, "--out-dir", out, "--storage", st}
		r := ck(t, 30*time.Second, append(args, tc.first...)...)
		if r.code != 0 || tc.note != "" && !strings.Contains(r.stderr, tc.note) {
			t.Fatalf("cert issue %s: exit %d, want 0 and the note %q\n%s", tc.first, r.code, tc.note, r.stderr)
		}
		if conf := string(mustRead(t, filepath.Join(out, "renewal", tc.name+".conf"))); !strings.Contains(conf, "key_type = "+tc.stored+"\n") {
			t.Errorf("cert issue %s remembered\n%s\nwant key_type = %s", tc.first, conf, tc.stored)
		}
		r = ck(t, 30*time.Second, append(args, tc.second...)...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "kept "+tc.name) {
			t.Errorf("cert issue %s, then %s: exit %d, want kept\n%s%s", tc.first, tc.second, r.code, r.stdout, r.stderr)
		}
	}
}

// TestIssueKeptDueAsRenew: cert issue run again says the certificate is due
// when cert renew would renew it: at the CA's ARI window, not by the
// lifetime rule alone (a CLI trial read three due times for one
// certificate, and a provisioning run between two of them would order one
// cert renew keeps).
func TestIssueKeptDueAsRenew(t *testing.T) {
	ca, st, out := issueWithPebble(t, "due.test")
	again := ck(t, time.Minute, append(pebbleArgs(ca, st, out), "-d", "due.test")...)
	_, issueDue, ok := strings.Cut(again.stderr, "not due for renewal until ")
	if again.code != 0 || !ok {
		t.Fatalf("cert issue again: exit %d, want kept\n%s", again.code, again.stderr)
	}
	issueDue, _, _ = strings.Cut(issueDue, ": nothing ordered")
	renewRun := ck(t, time.Minute, "cert", "renew", "--dry-run", "-d", "due.test", "--out-dir", out, "--storage", st)
	if !strings.Contains(renewRun.stdout+renewRun.stderr, "due "+issueDue) || !strings.Contains(renewRun.stdout+renewRun.stderr, "(ARI window)") {
		t.Errorf("cert issue says due %s; cert renew --dry-run:\n%s%s", issueDue, renewRun.stdout, renewRun.stderr)
	}
}

// TestIssueKeepsLaterHooks: cert issue run again, unchanged, after cert
// renew added a deploy hook keeps the certificate and the hook (a trial's
// provisioning run ordered a new certificate and dropped its nginx reload
// hook); an empty --deploy-hook drops the hook, still without an order, saying
// so.
func TestIssueKeepsLaterHooks(t *testing.T) {
	dir := t.TempDir()
	out, st := filepath.Join(dir, "out"), filepath.Join(dir, "st")
	args := []string{"cert", "issue", "--ca", "local", "-d", "h.test", "--out-dir", out, "--storage", st}
	serial := func() string { return readPair(t, out, "h.test")[0].SerialNumber.String() }
	if r := ck(t, 30*time.Second, args...); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "cert", "renew", "--out-dir", out, "--storage", st, "-d", "h.test", "--force", "--deploy-hook", "true"); r.code != 0 {
		t.Fatalf("cert renew --deploy-hook: exit %d\n%s", r.code, r.stderr)
	}
	conf := filepath.Join(out, "renewal", "h.test.conf")
	renewed := serial()
	r := ck(t, 30*time.Second, args...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kept h.test") || !strings.Contains(r.stderr, "--deploy-hook true, remembered for h.test") {
		t.Errorf("cert issue again after cert renew added a hook: exit %d, want kept, saying the hook applies\n%s%s", r.code, r.stdout, r.stderr)
	}
	if serial() != renewed || !strings.Contains(string(mustRead(t, conf)), "deploy_hook = true\n") {
		t.Errorf("cert issue again replaced the certificate or dropped the hook:\n%s", mustRead(t, conf))
	}
	r = ck(t, 30*time.Second, append(args, "--deploy-hook", "")...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "kept h.test") || !strings.Contains(r.stderr, "deploy_hook true -> (none) (remembered for its next renewals; no order") {
		t.Errorf("cert issue --deploy-hook '': exit %d, want kept, saying the hook is dropped\n%s%s", r.code, r.stdout, r.stderr)
	}
	if serial() != renewed || strings.Contains(string(mustRead(t, conf)), "deploy_hook") {
		t.Errorf("cert issue --deploy-hook '' replaced the certificate or kept the hook:\n%s", mustRead(t, conf))
	}
}
