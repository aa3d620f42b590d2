package cli

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCertRenewBatch: a basedir with 5 pairs — 2 due, 2 not due, 1 that
// does not parse — renews exactly the 2 due ones, keeps the previous
// certificates as .pem.old, runs the deploy hook twice and the post hook
// once, reports the broken pair and exits 1; --dry-run changes nothing;
// once the broken pair is gone, a second run finds nothing due and exits 0.
func TestCertRenewBatch(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"default": {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
		"short":   {Description: "24 seconds", ValidityPeriod: 24 * time.Second},
	}})
	storageDir, out := t.TempDir(), t.TempDir()
	issue := func(profile, name string) {
		t.Helper()
		args := pebbleArgs(ca, storageDir, out)
		for i, a := range args {
			if a == "--profile" {
				args[i+1] = profile
			}
		}
		if r := ck(t, time.Minute, append(args, "-d", name)...); r.code != 0 {
			t.Fatalf("issuing %s: exit %d\n%s", name, r.code, r.stderr)
		}
	}
	start := time.Now()
	issue("short", "due1.test")
	issue("short", "due2.test")
	issue("default", "fresh1.test")
	issue("default", "fresh2.test")
	for _, f := range []string{filepath.Join(out, "certs", "broken.test.pem"), filepath.Join(out, "private", "broken.test.key")} {
		if err := os.WriteFile(f, []byte("not PEM\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A 24 s certificate is due, whatever its ARI window, past 0.9 of its
	// lifetime (the safety margin).
	time.Sleep(time.Until(start.Add(22 * time.Second)))

	hookLog := filepath.Join(t.TempDir(), "hooks.log")
	renewArgs := func(extra ...string) []string {
		a := pebbleArgs(ca, storageDir, out)
		a[1] = "renew"
		return append(a, extra...)
	}
	before, _ := os.ReadFile(filepath.Join(out, "certs", "due1.test.pem"))

	dry := ck(t, time.Minute, renewArgs("--dry-run")...)
	if !strings.Contains(dry.stdout, "would renew") {
		t.Errorf("--dry-run summary:\n%s", dry.stdout)
	}
	if now, _ := os.ReadFile(filepath.Join(out, "certs", "due1.test.pem")); string(now) != string(before) {
		t.Error("--dry-run changed a certificate file")
	}

	orders := ca.Orders()
	r := ck(t, 2*time.Minute, renewArgs(
		"--deploy-hook", `echo "deploy $CERTKEEPER_NAME $CERTKEEPER_CERT_FILE" >> `+hookLog,
		"--post-hook", `echo post >> `+hookLog)...)
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (one pair could not be read)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := ca.Orders() - orders; n != 2 {
		t.Errorf("%d orders, want exactly 2 (the due pairs)", n)
	}
	for _, want := range []string{"due1.test  renewed", "due2.test  renewed", "fresh1.test  not due", "fresh2.test  not due", "broken.test  unparsable"} {
		if !strings.Contains(strings.Join(strings.Fields(r.stdout), "  "), strings.Join(strings.Fields(want), "  ")) {
			t.Errorf("summary lacks %q:\n%s", want, r.stdout)
		}
	}
	for _, n := range []string{"due1.test", "due2.test"} {
		old, err := os.ReadFile(filepath.Join(out, "certs", n+".pem.old"))
		if err != nil {
			t.Errorf("previous certificate of %s not kept: %v", n, err)
		}
		if n == "due1.test" && string(old) != string(before) {
			t.Error("due1.test.pem.old is not the previous certificate")
		}
		readPair(t, out, n) // the renewed pair matches (the key was reused)
	}
	if _, err := os.Stat(filepath.Join(out, "certs", "fresh1.test.pem.old")); err == nil {
		t.Error("a pair that was not due was touched")
	}
	log, _ := os.ReadFile(hookLog)
	if got := strings.Count(string(log), "deploy "); got != 2 {
		t.Errorf("deploy hook ran %d times, want 2:\n%s", got, log)
	}
	if got := strings.Count(string(log), "post"); got != 1 {
		t.Errorf("post hook ran %d times, want 1", got)
	}
	if !strings.Contains(string(log), filepath.Join(out, "certs", "due1.test.pem")) {
		t.Errorf("deploy hook did not get CERTKEEPER_CERT_FILE:\n%s", log)
	}

	// The broken pair fixed (removed), nothing is due any more.
	os.Remove(filepath.Join(out, "certs", "broken.test.pem"))
	os.Remove(filepath.Join(out, "private", "broken.test.key"))
	orders = ca.Orders()
	again := ck(t, time.Minute, renewArgs()...)
	if again.code != 0 || ca.Orders() != orders || strings.Contains(again.stdout, "renewed") {
		t.Errorf("second run: exit %d, %d orders\n%s%s", again.code, ca.Orders()-orders, again.stdout, again.stderr)
	}
}

// TestCertRevoke: revoked by the account and by the certificate's own key;
// Pebble's management API reports each revoked with the given reason.
func TestCertRevoke(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	for _, n := range []string{"r1.test", "r2.test"} {
		if r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "-d", n)...); r.code != 0 {
			t.Fatalf("issuing %s: %s", n, r.stderr)
		}
	}
	base := []string{"cert", "revoke", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", storageDir}
	for _, tt := range []struct {
		name   string
		extra  []string
		reason uint
	}{
		{"r1.test", []string{"--reason", "4"}, 4}, // lego's number
		{"r2.test", []string{"--reason", "keycompromise", "--key", filepath.Join(out, "private", "r2.test.key")}, 1}, // certbot's spelling
	} {
		certs := readPair(t, out, tt.name)
		if st := ca.CertStatus(t, certs[0].SerialNumber); st.Status != "Valid" {
			t.Fatalf("%s before revocation: %s", tt.name, st.Status)
		}
		args := append(append(base, "--cert", filepath.Join(out, "certs", tt.name+".pem")), tt.extra...)
		r := ck(t, time.Minute, args...)
		if r.code != 0 {
			t.Fatalf("revoking %s: exit %d\n%s", tt.name, r.code, r.stderr)
		}
		if want := map[uint]string{1: "reason keyCompromise)", 4: "reason superseded)"}[tt.reason]; !strings.Contains(r.stdout, want) {
			t.Errorf("%s: stdout %q, want the RFC name %q", tt.name, r.stdout, want)
		}
		if !strings.Contains(r.stderr, "the next cert renew replaces it") {
			t.Errorf("%s: stderr %q does not say cert renew replaces it", tt.name, r.stderr)
		}
		st := ca.CertStatus(t, certs[0].SerialNumber)
		if st.Status != "Revoked" || st.Reason == nil || *st.Reason != tt.reason {
			t.Errorf("%s: Pebble says %s reason %v, want Revoked reason %d", tt.name, st.Status, st.Reason, tt.reason)
		}
	}
	if r := ck(t, 30*time.Second, append(base, "--cert", "x", "--reason", "bogus")...); r.code != 2 {
		t.Errorf("unknown reason: exit %d, want 2", r.code)
	}

	// The copies cert issue kept in --storage are marked too: status
	// shows them revoked until cert renew replaces them.
	if r := ck(t, 30*time.Second, "status", "--storage", storageDir, "--json"); r.code != 0 || strings.Count(r.stdout, `"state": "revoked"`) != 2 {
		t.Errorf("status after revoking both files: exit %d, want both revoked\n%s%s", r.code, r.stdout, r.stderr)
	}

	// cert renew replaces both, due or not; r2's key, compromised, is
	// not used again, r1's is kept.
	keys := map[string][]byte{}
	for _, n := range []string{"r1.test", "r2.test"} {
		keys[n] = mustRead(t, filepath.Join(out, "private", n+".key"))
	}
	renew := pebbleArgs(ca, storageDir, out)
	renew[1] = "renew"
	if r := ck(t, time.Minute, renew...); r.code != 0 || strings.Count(r.stdout, "renewed") != 2 {
		t.Fatalf("cert renew after the revocations: exit %d, want both renewed\n%s%s", r.code, r.stdout, r.stderr)
	}
	for n, compromised := range map[string]bool{"r1.test": false, "r2.test": true} {
		if same := string(mustRead(t, filepath.Join(out, "private", n+".key"))) == string(keys[n]); same == compromised {
			t.Errorf("%s renewed with the same key: %v, want %v", n, same, !compromised)
		}
		if strings.Contains(string(mustRead(t, filepath.Join(out, "renewal", n+".conf"))), "revoked") {
			t.Errorf("%s's renewal settings still say revoked after the renewal", n)
		}
	}
	if r := ck(t, time.Minute, renew...); r.code != 0 || strings.Contains(r.stdout, "renewed") {
		t.Errorf("a second cert renew renewed again:\n%s%s", r.stdout, r.stderr)
	}
}

// TestCertRenewKilled: a renew run killed with SIGKILL at any point leaves
// every file whole; with the key reused every pair matches; with
// --new-key a pair the kill left mismatched is detected and repaired from
// storage by the next run.
func TestCertRenewKilled(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	names := []string{"k1.test", "k2.test", "k3.test", "k4.test", "k5.test"}
	for _, n := range names {
		if r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "-d", n)...); r.code != 0 {
			t.Fatalf("issuing %s: %s", n, r.stderr)
		}
	}
	renew := func(extra ...string) []string {
		a := pebbleArgs(ca, storageDir, out)
		a[1] = "renew"
		return append(append(a, "--force"), extra...)
	}
	check := func(allowMismatch bool) (mismatched int) {
		t.Helper()
		pairs, err := certfile.Dir(out).Pairs()
		if err != nil {
			t.Fatal(err)
		}
		if len(pairs) != len(names) {
			t.Fatalf("%d pairs, want %d", len(pairs), len(names))
		}
		for _, p := range pairs {
			switch {
			case p.Err == nil:
			case allowMismatch && errors.Is(p.Err, certfile.ErrKeyMismatch):
				mismatched++
			default:
				t.Fatalf("after a kill, %s is damaged: %v", p.Base, p.Err)
			}
		}
		return mismatched
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, newKey := range []bool{false, true} {
		extra := []string{}
		if newKey {
			extra = append(extra, "--new-key")
		}
		mismatches := 0
		for i := range 4 {
			cmd := exec.Command(binary, renew(extra...)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(rnd.IntN(120)) * time.Millisecond)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			mismatches += check(newKey)
			if newKey && i%2 == 1 {
				// A run after the kill repairs what it left.
				if r := ck(t, time.Minute, renew(extra...)...); r.code != 0 {
					t.Fatalf("run after a kill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
				}
				check(false)
			}
		}
		t.Logf("new key %v: %d mismatched pairs seen after kills", newKey, mismatches)
	}
	// A pair left as a kill between the key and the certificate leaves it
	// (a new key beside the old certificate) is repaired from storage.
	otherKey, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, _ := storage.MarshalPrivateKeyPEM(otherKey)
	if err := os.WriteFile(filepath.Join(out, "private", "k1.test.key"), otherPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if check(true) != 1 {
		t.Fatal("the damaged pair is not seen as mismatched")
	}
	r := ck(t, time.Minute, renew("--new-key")...)
	if r.code != 0 || !strings.Contains(r.stderr, "restored both from storage") {
		t.Fatalf("final run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	check(false)
}

// TestIssueForCSR: --csr issues for the user's own request; the key never
// leaves them, and only the certificate file is written.
func TestIssueForCSR(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	key, err := issuer.ECDSAP384.Generate()
	if err != nil {
		t.Fatal(err)
	}
	der, err := issuer.NewCSR(key, []string{"csr.test", "www.csr.test"})
	if err != nil {
		t.Fatal(err)
	}
	csrFile := filepath.Join(t.TempDir(), "req.csr")
	if err := os.WriteFile(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	r := ck(t, time.Minute, append(pebbleArgs(ca, t.TempDir(), out), "--csr", csrFile)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "private", "csr.test.key")); err == nil {
		t.Error("a key file was written for a CSR")
	}
	leaf, err := readCertFile("--cert", filepath.Join(out, "certs", "csr.test.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey) {
		t.Error("the certificate is not for the CSR's key")
	}
	if strings.Join(leaf.DNSNames, ",") != "csr.test,www.csr.test" {
		t.Errorf("names = %v", leaf.DNSNames)
	}
	if !strings.Contains(r.stderr, "cert renew does not renew a certificate for a CSR") {
		t.Errorf("stderr does not say that cert renew leaves it alone:\n%s", r.stderr)
	}
	if r := ck(t, 30*time.Second, append(pebbleArgs(ca, t.TempDir(), out), "--csr", filepath.Join(out, "nope"))...); r.code != 1 || !strings.Contains(r.stderr, "--csr") {
		t.Errorf("missing CSR file: exit %d\n%s", r.code, r.stderr)
	}
	// -d with other names than the CSR's is refused before any order (a
	// trial's was ordered, validated, and refused at finalization); the
	// same names in any order or case are the CSR's.
	if r := ck(t, 30*time.Second, append(pebbleArgs(ca, t.TempDir(), t.TempDir()), "--csr", csrFile, "-d", "other.test")...); r.code != 2 ||
		!strings.Contains(r.stderr, "-d other.test: --csr "+csrFile+" is for csr.test, www.csr.test, and a CSR is signed") ||
		strings.Contains(r.stderr, "creating order") {
		t.Errorf("--csr with -d other.test: exit %d, want 2 before any order\n%s", r.code, r.stderr)
	}
	if r := ck(t, time.Minute, append(pebbleArgs(ca, t.TempDir(), t.TempDir()), "--csr", csrFile, "-d", "WWW.csr.test,csr.test")...); r.code != 0 {
		t.Errorf("--csr with its own names in another order: exit %d\n%s", r.code, r.stderr)
	}
}

// TestCertRenewWant: a want list issues what it names but the directory
// lacks, and leaves alone what is there.
func TestCertRenewWant(t *testing.T) {
	storageDir, out := t.TempDir(), t.TempDir()
	want := filepath.Join(t.TempDir(), "want.txt")
	if err := os.WriteFile(want, []byte("# certificates to have\nw.test www.w.test\n\nother.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"cert", "renew", "--ca", "local", "--storage", storageDir, "--out-dir", out, "--want", want}
	r := ck(t, time.Minute, args...)
	if r.code != 0 || strings.Count(r.stdout, "issued") != 2 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if want := "w.test: no files, none in storage: ordering a new certificate from local"; !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q (which CA a want entry is ordered from):\n%s", want, r.stderr)
	}
	certs := readPair(t, out, "w.test")
	if strings.Join(certs[0].DNSNames, ",") != "w.test,www.w.test" {
		t.Errorf("w.test covers %v", certs[0].DNSNames)
	}
	again := ck(t, time.Minute, args...)
	if again.code != 0 || strings.Contains(again.stdout, "issued") {
		t.Errorf("second run issued again:\n%s", again.stdout)
	}
	bad := filepath.Join(t.TempDir(), "bad.txt")
	os.WriteFile(bad, []byte("a..b\n"), 0o644)
	if r := ck(t, time.Minute, "cert", "renew", "--ca", "local", "--storage", storageDir, "--out-dir", out, "--want", bad); r.code != 2 || !strings.Contains(r.stderr, "line 1") {
		t.Errorf("bad want list: exit %d\n%s", r.code, r.stderr)
	}
}

// TestCertRenewUsesRecordedEmail: renewal needs no configuration: the
// email a certificate was issued with names the account that renews it.
func TestCertRenewUsesRecordedEmail(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	if r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "--email", "e@a.test", "-d", "e.test")...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	args := pebbleArgs(ca, storageDir, out)
	args[1] = "renew"
	if r := ck(t, time.Minute, append(args, "--force")...); r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	accounts, _ := filepath.Glob(filepath.Join(storageDir, "accounts", "*", "*.json"))
	if len(accounts) != 1 || filepath.Base(accounts[0]) != "e@a.test.json" {
		t.Errorf("accounts after renewal: %v, want only e@a.test's", accounts)
	}
	if ca.Accounts() != 1 {
		t.Errorf("%d accounts registered, want 1", ca.Accounts())
	}
}

// TestIssueAgain: cert issue for a name whose files are there says what
// the new certificate replaced (names dropped, renewal settings changed);
// an --out-dir that cannot be written is found before anything is ordered.
func TestIssueAgain(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir, out := t.TempDir(), t.TempDir()
	args := pebbleArgs(ca, storageDir, out)

	r := ck(t, time.Minute, append(args, "-d", "t.test", "-d", "www.t.test", "--challenge", "tls-alpn-01", "--email", "x@t.test")...)
	if r.code != 0 {
		t.Fatalf("first issue: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "replaced") {
		t.Errorf("a first issuance says it replaced something:\n%s", r.stderr)
	}
	// The same names in another order (the apex added, and said so) are
	// that certificate's, kept: a trial's was a second certificate,
	// renewed beside the first for good.
	orders := ca.Orders()
	r = ck(t, time.Minute, append(args, "-d", "www.t.test", "--challenge", "tls-alpn-01", "--email", "x@t.test")...)
	if r.code != 0 || ca.Orders() != orders || !strings.Contains(r.stdout, "kept t.test,www.t.test") ||
		!strings.Contains(r.stderr, "certkeeper: adding t.test, the apex of a www. name given (--no-apex leaves it out)\n") ||
		!strings.Contains(r.stderr, "holds a certificate for these names named for t.test") {
		t.Errorf("the same names in another order: exit %d, %d orders; want the certificate kept, the apex and the files' name said\n%s%s",
			r.code, ca.Orders()-orders, r.stdout, r.stderr)
	}
	r = ck(t, time.Minute, append(args, "-d", "t.test", "--no-apex", "--email", "x@t.test")...)
	if r.code != 0 {
		t.Fatalf("second issue: exit %d\n%s", r.code, r.stderr)
	}
	for _, w := range []string{"replaced the certificate of t.test", "no longer for www.t.test", "challenge tls-alpn-01 -> http-01"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("second issue's stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	r = ck(t, time.Minute, append(args, "-d", "t.test", "--no-apex", "--email", "x@t.test")...)
	if r.code != 0 || strings.Contains(r.stderr, "replaced") {
		t.Errorf("the same issuance again: exit %d, and it says it replaced something:\n%s", r.code, r.stderr)
	}
	r = ck(t, time.Minute, append(args, "-d", "t.test", "-d", "api.t.test", "--no-apex", "--email", "x@t.test")...)
	if r.code != 0 || !strings.Contains(r.stderr, "replaced the certificate of t.test: now also for api.t.test\n") {
		t.Errorf("a name added: exit %d, want it said:\n%s", r.code, r.stderr)
	}

	// An --out-dir under a regular file cannot be created: refused before
	// the order, which a rerun with the right directory would repeat.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	orders = ca.Orders()
	r = ck(t, time.Minute, append(pebbleArgs(ca, storageDir, filepath.Join(file, "ssl")), "-d", "u.test")...)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing was ordered") || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("unwritable --out-dir: exit %d, want 1 and the reason:\n%s", r.code, r.stderr)
	}
	if ca.Orders() != orders {
		t.Errorf("%d orders placed for an --out-dir that cannot be written", ca.Orders()-orders)
	}
}

// TestCANotDirectory: a --ca URL that reaches a server but not an ACME
// directory (a wrong path: 404; http:// to the HTTPS port: 400) is said
// to be that, on one line, with the flag to check; it was "cannot reach
// the ACME CA", with the 404 page's newline in the middle (trial 14).
func TestCANotDirectory(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	for _, tt := range []struct{ url, want string }{
		{strings.TrimSuffix(ca.DirectoryURL(), "/dir") + "/directory", "answered HTTP 404, not an ACME directory"},
		{"http://" + strings.TrimPrefix(strings.TrimSuffix(ca.DirectoryURL(), "/dir"), "https://") + "/dir", "answered HTTP 400, the server speaks HTTPS"},
	} {
		args := pebbleArgs(ca, t.TempDir(), t.TempDir())
		args[3] = tt.url // --ca's value
		r := ck(t, time.Minute, append(args, "-d", "a.test")...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || !strings.Contains(r.stderr, "check --ca") || strings.Contains(r.stderr, "cannot reach") {
			t.Errorf("--ca %s: exit %d, want 1 saying %q and check --ca:\n%s", tt.url, r.code, tt.want, r.stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			if strings.HasPrefix(line, ";") {
				t.Errorf("--ca %s: the message is split over lines:\n%s", tt.url, r.stderr)
			}
		}
	}
}

// TestCertRenewEarlyWindow: a certificate the CA wants replaced early (its
// ARI window moved to the past, with an explanation URL) is renewed by
// the next cert renew, two months before the lifetime rule's time, and
// the summary says why, with the CA's URL (RFC 9773 asks clients to show
// it to their operator).
func TestCertRenewEarlyWindow(t *testing.T) {
	t.Parallel()
	ca, storageDir, out := issueWithPebble(t, "early.test")
	renew := pebbleArgs(ca, storageDir, out)
	renew[1] = "renew"
	if r := ck(t, time.Minute, renew...); r.code != 0 || !strings.Contains(r.stdout, "not due") {
		t.Fatalf("before the window moved: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The window it asked for is kept with the stored copy, and status
	// plans the renewal from it, as cert renew does.
	leaf := readPair(t, out, "early.test")[0]
	key, err := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), "early.test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := filestore.New(storageDir).Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil || rec.RenewalWindow == nil {
		t.Fatalf("the stored copy keeps no renewal window after cert renew (%v)", err)
	}
	st := ck(t, time.Minute, "status", "--json", "--storage", storageDir)
	var certs []status.Cert
	if err := json.Unmarshal([]byte(st.stdout), &certs); err != nil || len(certs) != 1 {
		t.Fatalf("status --json: %v\n%s%s", err, st.stdout, st.stderr)
	}
	want := renewal.Due(renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber,
		ARI: renewal.Window{Start: rec.RenewalWindow.Start, End: rec.RenewalWindow.End}}, time.Now(), nil)
	if !certs[0].NextRenewal.Equal(want) {
		t.Errorf("status's next renewal %v, want %v (from the CA's window)", certs[0].NextRenewal, want)
	}
	now := time.Now()
	ca.SetRenewalWindow(t, leaf, now.Add(-2*time.Hour), now.Add(-time.Hour), "https://ca.test/incident")
	r := ck(t, time.Minute, renew...)
	if r.code != 0 || !strings.Contains(r.stdout, "renewed") ||
		!strings.Contains(r.stdout, "the CA asks for early renewal (ARI window): https://ca.test/incident") {
		t.Fatalf("after the window moved: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestIssueConcurrent: two cert issue runs for the same name and
// --out-dir at once order one certificate: the second waits for the
// first (renew.LockDir, the lock cert renew takes) and then keeps what it
// wrote. Without the lock both ordered (or the second failed on the
// http-01 port the first held).
func TestIssueConcurrent(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	args := append(pebbleArgs(ca, t.TempDir(), t.TempDir()), "-d", "both.test")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, binary, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			results[i] = result{stdout: stdout.String(), stderr: stderr.String()}
			if ee, ok := err.(*exec.ExitError); ok {
				results[i].code = ee.ExitCode()
			} else if err != nil {
				results[i] = result{code: -1, stderr: err.Error()}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("the two runs did not finish within 2 minutes:\n%s\n%s", results[0].stderr, results[1].stderr)
	}
	var issued, kept int
	for _, r := range results {
		switch {
		case r.code == 0 && strings.HasPrefix(r.stdout, "issued both.test"):
			issued++
		case r.code == 0 && strings.HasPrefix(r.stdout, "kept both.test"):
			kept++
		}
	}
	if issued != 1 || kept != 1 {
		t.Errorf("two cert issue runs at once: %d issued, %d kept; want one of each\nfirst: exit %d\n%s%s\nsecond: exit %d\n%s%s",
			issued, kept, results[0].code, results[0].stdout, results[0].stderr, results[1].code, results[1].stdout, results[1].stderr)
	}
	ca.WaitFor(t, "an order", func() bool { return ca.Orders() > 0 })
	if n := ca.Orders(); n != 1 {
		t.Errorf("Pebble saw %d orders, want 1", n)
	}
}

// TestCertRenewCARootsHint: a renewal that fails because the CA's HTTPS
// certificate is not trusted (its remembered ca_roots gone) gets, on its
// summary line, the hint cert issue gives for it: give --ca-roots FILE.
func TestCertRenewCARootsHint(t *testing.T) {
	t.Parallel()
	_, storageDir, out := issueWithPebble(t, "roots.test")
	conf := filepath.Join(out, "renewal", "roots.test.conf")
	var kept []string
	for _, line := range strings.Split(string(mustRead(t, conf)), "\n") {
		if !strings.HasPrefix(line, "ca_roots =") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(conf, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ck(t, time.Minute, "cert", "renew", "--force", "--storage", storageDir, "--out-dir", out)
	want := "certificate signed by unknown authority; on the command line: give --ca-roots FILE"
	if r.code != 1 || !strings.Contains(r.stdout, want) {
		t.Errorf("cert renew with the CA untrusted: exit %d, want 1 and a summary line with %q\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	// A remembered file that is gone is said as remembered, not as a flag
	// the command line never gave (a DNS trial: "--tsig-key-file: open …").
	gone := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(conf, []byte(strings.Join(kept, "\n")+"\nca_roots = "+gone+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ck(t, time.Minute, "cert", "renew", "--force", "--storage", storageDir, "--out-dir", out)
	want = "ca_roots = " + gone + ", remembered in " + conf + ", does not exist: put it back, or give --ca-roots to change it"
	if r.code != 1 || !strings.Contains(r.stdout, want) {
		t.Errorf("cert renew with its remembered ca_roots gone: exit %d, want 1 and a summary line with %q\n%s%s", r.code, want, r.stdout, r.stderr)
	}
}
