package renew

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/issuer/selfsigned"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewerSettings: each pair renews with its remembered settings and
// Override on top (which is then remembered), pairs with the same issuer
// settings share one chain, and unreadable settings fail their pair
// alone.
func TestRenewerSettings(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	var asked []string
	r := &Renewer{
		Dir: dir, Storage: st,
		Issuers: func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
			asked = append(asked, s.CA)
			return &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}, nil, nil
		},
		Want: [][]string{{"a.test"}, {"b.test"}, {"c.test"}},
	}
	r.Override = Settings{CA: "one"}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{"one"}) {
		t.Errorf("Issuers asked for %q, want one chain for the three certificates", asked)
	}
	path := func(base string) string { return filepath.Join(string(dir), "renewal", base+".conf") }
	if err := SaveSettings(path("b.test"), Settings{CA: "two", PostHook: "true"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path("c.test"), 0o660); err != nil {
		t.Fatal(err)
	}

	asked = nil
	r.Want, r.Force, r.Override = nil, true, Settings{Profile: "p"}
	results, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]Action{}
	for _, j := range results {
		actions[j.Base] = j.Action
	}
	if actions["a.test"] != Renewed || actions["b.test"] != Renewed || actions["c.test"] != Failed {
		t.Errorf("actions %v, want a and b renewed, c failed (group-writable settings)", actions)
	}
	if !slices.Equal(asked, []string{"one", "two"}) {
		t.Errorf("Issuers asked for %q, want one then two", asked)
	}
	for base, want := range map[string]Settings{
		"a.test": {CA: "one", Profile: "p"},
		"b.test": {CA: "two", Profile: "p", PostHook: "true"},
	} {
		if got, err := LoadSettings(path(base)); err != nil || got.CA != want.CA || got.Profile != want.Profile || got.PostHook != want.PostHook {
			t.Errorf("%s settings after the run = %+v, %v; want %+v", base, got, err, want)
		}
	}
}

// TestRenewerSkipsSelfSigned: self-signed pairs with no renewal settings
// (Debian's ssl-cert-snakeoil in /etc/ssl, a placeholder made by
// certkeeper selfsigned) are left alone even with Force, and no issuer is
// set up for them; listed in Want, a placeholder is replaced like any
// pair.
func TestRenewerSkipsSelfSigned(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	selfSignedPair(t, dir, "ssl-cert-snakeoil", "debian")
	selfSignedPair(t, dir, "a.test", "a.test")
	issuers := 0
	r := &Renewer{
		Dir: dir, Storage: st, Force: true,
		Issuers: func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
			issuers++
			return &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}, nil, nil
		},
	}
	actions := func(results []*Result) map[string]Action {
		m := map[string]Action{}
		for _, j := range results {
			m[j.Base] = j.Action
			if j.Action == Skipped && !strings.Contains(j.Detail, "self-signed") {
				t.Errorf("%s skipped with detail %q, want it to say self-signed", j.Base, j.Detail)
			}
		}
		return m
	}
	results, err := r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(results); got["ssl-cert-snakeoil"] != Skipped || got["a.test"] != Skipped || len(got) != 2 || issuers != 0 {
		t.Fatalf("actions %v, issuers set up %d; want both pairs skipped as self-signed, no issuer", got, issuers)
	}
	if n := Failures(results, nil); n != 0 {
		t.Errorf("Failures = %d, want 0: a skipped pair is no failure", n)
	}
	r.Want = [][]string{{"a.test"}}
	if results, err = r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := actions(results); got["ssl-cert-snakeoil"] != Skipped || got["a.test"] != Renewed {
		t.Errorf("actions %v, want the wanted placeholder a.test renewed and snakeoil still skipped", got)
	}
	if _, chain, err := dir.Read("a.test"); err != nil || selfSigned(chain[0]) {
		t.Errorf("a.test after its renewal: self-signed still, or %v", err)
	}
}

// selfSignedPair writes a self-signed certificate for name and its key
// as dir's pair base, as Debian's ssl-cert package does.
func selfSignedPair(t *testing.T, dir certfile.Dir, base, name string) {
	t.Helper()
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM, err := selfsigned.Certificate(key, []string{name}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for file, data := range map[string][]byte{"certs/" + base + ".pem": chainPEM, "private/" + base + ".key": keyPEM} {
		path := filepath.Join(string(dir), file)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRenewerKeyTypeChange: a renewal keeps its key, unless the key_type
// it renews with (here given for the run) is not that key's type: then
// the certificate gets a new key of the type asked for, and the files and
// the remembered settings agree.
func TestRenewerKeyTypeChange(t *testing.T) {
	e := newLocal(t, []string{"a.test"})
	r, dir := e.r, e.r.Dir
	keyOf := func() issuer.KeyType {
		t.Helper()
		key, _, err := dir.Read("a.test")
		if err != nil {
			t.Fatal(err)
		}
		return issuer.KeyTypeOf(key.Public())
	}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	first := keyOf()

	renewWith := func(kt string) {
		t.Helper()
		r.Want, r.Force, r.Override = nil, true, Settings{KeyType: kt}
		results, err := r.Run(t.Context())
		if err != nil || len(results) != 1 || results[0].Action != Renewed {
			t.Fatalf("renewal with key_type %q: %v, %+v", kt, err, results)
		}
	}
	renewWith(string(first)) // the same type: the key is kept
	if got := keyOf(); got != first {
		t.Fatalf("key type %s after a renewal with key_type %s", got, first)
	}
	renewWith("rsa2048")
	if got := keyOf(); got != issuer.RSA2048 {
		t.Errorf("renewed with key_type rsa2048, the key is %s", got)
	}
	if s, err := LoadSettings(filepath.Join(string(dir), "renewal", "a.test.conf")); err != nil || s.KeyType != "rsa2048" {
		t.Errorf("remembered settings %+v, %v; want key_type rsa2048", s, err)
	}
}

// TestRenewerWantFromStorage: a Want entry without files, whose
// certificate storage holds (certkeeper import's, or one whose files
// could not be written), is written from storage without an order, with
// renewal settings naming its CA; the next run finds it not due.
func TestRenewerWantFromStorage(t *testing.T) {
	// The stored one's first name is s.test: the entry finds it in any
	// order, and its files are named for the entry's first.
	e := newLocal(t, []string{"www.s.test", "s.test"}, []string{"new.test"})
	r, dir := e.r, e.r.Dir
	stored, err := certkeeper.Issue(t.Context(), e.st, certkeeper.IssueRequest{Names: []string{"s.test", "www.s.test"}, Issuers: e.chain})
	if err != nil {
		t.Fatal(err)
	}
	r.DryRun = true
	results, err := r.Run(t.Context())
	if err != nil || len(results) != 2 || results[0].Action != WouldWrite || e.asked != 0 {
		t.Fatalf("dry run: %v, %+v, %d chains; want www.s.test would be written, nothing set up", err, results, e.asked)
	}
	r.DryRun = false
	results, err = r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]Action{}
	for _, j := range results {
		actions[j.Base] = j.Action
	}
	if actions["www.s.test"] != Written || actions["new.test"] != Issued || e.asked != 1 {
		t.Fatalf("actions %v, issuer chains set up %d times; want www.s.test written from storage, new.test issued (one chain)", actions, e.asked)
	}
	_, certs, err := dir.Read("www.s.test")
	if err != nil || !certs[0].Equal(stored.Certificate.Leaf) {
		t.Fatalf("s.test's files hold another certificate than the stored one (%v)", err)
	}
	if s, err := LoadSettings(filepath.Join(string(dir), "renewal", "www.s.test.conf")); err != nil || s.CA != "local" {
		t.Errorf("www.s.test's renewal settings %+v, %v; want ca local", s, err)
	}
	results, err = r.Run(t.Context())
	if err != nil || len(results) != 2 || results[0].Action != NotDue || results[1].Action != NotDue {
		t.Errorf("second run: %v, %+v; want both not due", err, results)
	}
}

// TestRenewerWantExpiredKeyType: a Want entry whose certificate storage
// holds, expired, is ordered anew with that certificate's key type, and
// says so; a migration trial's imported RSA certificate came back ECDSA.
func TestRenewerWantExpiredKeyType(t *testing.T) {
	e := newLocal(t, []string{"x.test", "www.x.test"})
	expiring := &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: e.st, Lifetime: time.Second}}}
	old, err := certkeeper.Issue(t.Context(), e.st, certkeeper.IssueRequest{Names: []string{"www.x.test", "x.test"}, Issuers: expiring, KeyType: issuer.RSA2048})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(old.Certificate.Leaf.NotAfter.Add(time.Second))) // NotAfter is whole seconds; at most 2 s
	var said []string
	e.r.Progress = func(name, step string) { said = append(said, step) }
	results, err := e.r.Run(t.Context())
	if err != nil || len(results) != 1 || results[0].Action != Issued {
		t.Fatalf("%v, %+v; want x.test issued", err, results)
	}
	key, _, err := e.r.Dir.Read("x.test")
	if err != nil || issuer.KeyTypeOf(key.Public()) != issuer.RSA2048 {
		t.Errorf("the new certificate's key is %v (%v), want rsa2048 as the expired one's", issuer.KeyTypeOf(key.Public()), err)
	}
	if !slices.ContainsFunc(said, func(s string) bool { return strings.Contains(s, "storage's certificate expired") }) {
		t.Errorf("progress %q does not say storage's certificate expired", said)
	}
}

// TestRenewerNotDueHooks: hooks given to a run are remembered for a pair
// not due at once (a migration trial's cert renew -d NAME --deploy-hook,
// as the certbot import advises, said "not due" and forgot the hook); the
// other settings given wait for its renewal, and the result says so.
func TestRenewerNotDueHooks(t *testing.T) {
	e := newLocal(t, []string{"a.test"})
	r := e.r
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(string(r.Dir), "renewal", "a.test.conf")
	r.Want, r.Override = nil, Settings{DeployHook: "systemctl reload nginx", Challenge: "tls-alpn-01"}
	results, err := r.Run(t.Context())
	if err != nil || len(results) != 1 || results[0].Action != NotDue {
		t.Fatalf("%v, %+v; want a.test not due", err, results)
	}
	if d := results[0].Detail; !strings.Contains(d, "; deploy_hook remembered") || !strings.Contains(d, "; challenge remembered once it is renewed with them (--force renews it now)") {
		t.Errorf("detail %q does not say what was remembered and what was not", d)
	}
	if s, err := LoadSettings(conf); err != nil || s.DeployHook != "systemctl reload nginx" || s.Challenge == "tls-alpn-01" {
		t.Errorf("remembered %+v (%v); want the deploy hook, not the challenge", s, err)
	}
	results, err = r.Run(t.Context())
	if err != nil || strings.Contains(results[0].Detail, "deploy_hook remembered") {
		t.Errorf("the same run again: %v, detail %q; the hook is remembered already", err, results[0].Detail)
	}
}

// TestRenewerWantOverride: with Want, the run's Override is for the
// wanted entries only; another pair due in the same run renews with its
// own settings (a migration trial's want run for wildcards renewed an
// http-01 certificate with its dns-01 flags and hook).
func TestRenewerWantOverride(t *testing.T) {
	e := newLocal(t, []string{"a.test"})
	r := e.r
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	var hooks []string
	r.AfterRenew = func(ctx context.Context, j *Result) error {
		hooks = append(hooks, j.Base+":"+j.Settings.DeployHook)
		return nil
	}
	r.Want, r.Force, r.Override = [][]string{{"b.test"}}, true, Settings{DeployHook: "reload-b"}
	results, err := r.Run(t.Context())
	if err != nil || len(results) != 2 {
		t.Fatalf("%v, %+v", err, results)
	}
	slices.Sort(hooks)
	if want := []string{"a.test:", "b.test:reload-b"}; !slices.Equal(hooks, want) {
		t.Errorf("deploy hooks %q, want %q: the run's hook for b.test alone", hooks, want)
	}
	for base, want := range map[string]string{"a.test": "", "b.test": "reload-b"} {
		if s, err := LoadSettings(filepath.Join(string(r.Dir), "renewal", base+".conf")); err != nil || s.DeployHook != want {
			t.Errorf("%s remembers deploy_hook %q (%v), want %q", base, s.DeployHook, err, want)
		}
	}
}

// TestRenewerFailuresInStatus: a certificate cert renew cannot renew is
// shown failing by status (with the error), as one a Manager cannot
// renew is; its renewal clears that.
func TestRenewerFailuresInStatus(t *testing.T) {
	e := newLocal(t, []string{"f.test"})
	r, st := e.r, e.st
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	stateOf := func() status.Cert {
		t.Helper()
		certs, err := status.Read(t.Context(), st, time.Now())
		if err != nil || len(certs) != 1 {
			t.Fatalf("status: %v, %+v", err, certs)
		}
		return certs[0]
	}
	if c := stateOf(); c.State != status.Fine {
		t.Fatalf("after issuing: %s", c.State)
	}
	e.broken = errors.New("the CA's account is deactivated")
	r.Want, r.Force = nil, true
	// Kept as Explain words it (a command's flags for the fields the
	// libraries name, as its summary says them).
	r.Explain = func(err error) string { return err.Error() + "; on the command line: use another --email" }
	if results, err := r.Run(t.Context()); err != nil || results[0].Action != Failed {
		t.Fatalf("renewal with a broken issuer: %v, %+v", err, results)
	}
	if c := stateOf(); c.State != status.Failing || !strings.Contains(c.LastError, "deactivated; on the command line: use another --email") {
		t.Errorf("after a failed renewal: state %s, last error %q; want failing with the error as Explain words it", c.State, c.LastError)
	}
	// A run that finds it not due (the failure was a forced renewal's)
	// ends its failing: a CLI trial's stayed failing, and its monitoring
	// warned, for the two months until the certificate was due.
	r.Force = false
	if results, err := r.Run(t.Context()); err != nil || results[0].Action != NotDue {
		t.Fatalf("a run without --force: %v, %+v; want not due", err, results)
	}
	if c := stateOf(); c.State != status.Fine || c.LastError != "" {
		t.Errorf("after a run that found it not due: state %s, last error %q; want fine", c.State, c.LastError)
	}
	r.Force = true
	if results, err := r.Run(t.Context()); err != nil || results[0].Action != Failed || stateOf().State != status.Failing {
		t.Fatalf("renewal with a broken issuer again: %v, %+v", err, results)
	}
	e.broken = nil
	if results, err := r.Run(t.Context()); err != nil || results[0].Action != Renewed {
		t.Fatalf("renewal: %v, %+v", err, results)
	}
	if c := stateOf(); c.State != status.Fine || c.LastError != "" {
		t.Errorf("after the renewal: state %s, last error %q; want fine", c.State, c.LastError)
	}
}

// TestRenewerAfterRenewFails: a certificate renewed whose AfterRenew (the
// deploy hook) fails is Failed, for the exit status, and its Detail says
// it was renewed all the same.
func TestRenewerAfterRenewFails(t *testing.T) {
	r := newLocal(t, []string{"h.test"}).r
	r.AfterRenew = func(ctx context.Context, j *Result) error { return errors.New("deploy hook: exit status 3") }
	results, err := r.Run(t.Context())
	if err != nil || len(results) != 1 {
		t.Fatal(err, results)
	}
	if j := results[0]; j.Action != Failed || !strings.HasPrefix(j.Detail, "issued (not_after ") || !strings.Contains(j.Detail, "but deploy hook: exit status 3") {
		t.Errorf("action %s, detail %q; want failed, saying it was issued but the hook failed", j.Action, j.Detail)
	}
}

// TestMarkRevokedOnlyPairs: a certificate file that is not a pair's
// certs/NAME.pem (no key beside it, or elsewhere) is left alone.
func TestMarkRevokedOnlyPairs(t *testing.T) {
	dir := t.TempDir()
	for _, file := range []string{filepath.Join(dir, "a.pem"), filepath.Join(dir, "certs", "a.pem"), filepath.Join(dir, "certs", "a.crt")} {
		if marked, err := MarkRevoked(file, "superseded"); marked || err != nil {
			t.Errorf("MarkRevoked(%s) = %v, %v; want false: not a pair's", file, marked, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "renewal")); err == nil {
		t.Error("renewal settings were written for a file that is not a pair's")
	}
}

// localEnv is a Renewer of a temporary directory and storage whose issuer
// is the local CA: broken, when set, is the error setting it up fails
// with, and asked counts the set-ups.
type localEnv struct {
	r      *Renewer
	st     storage.Storage
	chain  *issuer.Chain
	asked  int
	broken error
}

func newLocal(t *testing.T, want ...[]string) *localEnv {
	tmp := t.TempDir()
	e := &localEnv{st: filestore.New(filepath.Join(tmp, "state"))}
	e.chain = &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: e.st}}}
	e.r = &Renewer{
		Dir: certfile.Dir(filepath.Join(tmp, "ssl")), Storage: e.st, Want: want,
		Issuers: func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
			e.asked++
			return e.chain, nil, e.broken
		},
	}
	return e
}

// runOne runs e's Renewer, which must report one certificate, and returns
// its result.
func (e *localEnv) runOne(t *testing.T) *Result {
	t.Helper()
	results, err := e.r.Run(t.Context())
	if err != nil || len(results) != 1 {
		t.Fatal(err, results)
	}
	return results[0]
}

// refuseRecord makes e's storage refuse the local CA's record of name, as
// a full disk refuses a write: a directory squats on its file.
func (e *localEnv) refuseRecord(t *testing.T, name string) {
	t.Helper()
	key, err := storage.CertificateKey("local", name)
	if err != nil {
		t.Fatal(err)
	}
	squat := filepath.Join(e.st.(*filestore.Store).Dir, filepath.FromSlash(key), "squatter")
	if err := os.MkdirAll(squat, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestRenewerWildcardByDNS: a wildcard whose renewal settings say
// challenge http-01 (written before a DNS provider implied dns-01) renews
// with dns-01 when they name a provider, and remembers it; with no
// provider it fails before any order, naming its settings file, where it
// failed at the CA with an error about challenges.
func TestRenewerWildcardByDNS(t *testing.T) {
	e := newLocal(t, []string{"*.w.test"})
	var challenges []string
	e.r.Issuers = func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
		challenges = append(challenges, s.Challenge)
		return e.chain, nil, nil
	}
	if _, err := e.r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(string(e.r.Dir), "renewal", "wildcard_w.test.conf")
	e.r.Want, e.r.Force = nil, true

	if err := SaveSettings(path, Settings{CA: "https://127.0.0.1:1/dir", Challenge: "http-01"}); err != nil {
		t.Fatal(err)
	}
	challenges = nil
	results, err := e.r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Action != Failed || !strings.Contains(results[0].Detail, "set challenge = dns-01") ||
		!strings.Contains(results[0].Detail, path) || len(challenges) != 0 {
		t.Fatalf("no DNS provider: results %+v, issuers asked for %v; want a failure naming %s before any issuer", results, challenges, path)
	}

	if err := SaveSettings(path, Settings{CA: "https://127.0.0.1:1/dir", Challenge: "http-01", DNS: "rfc2136", DNSServer: "127.0.0.1:53"}); err != nil {
		t.Fatal(err)
	}
	var notes []string
	e.r.Progress = func(name, step string) { notes = append(notes, name+": "+step) }
	results, err = e.r.Run(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Action != Renewed || !slices.Equal(challenges, []string{"dns-01"}) {
		t.Fatalf("with a DNS provider: results %+v, issuers asked for %v; want renewed with dns-01", results, challenges)
	}
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "renewing with dns-01 through rfc2136") }) {
		t.Errorf("progress %q does not say the challenge changed", notes)
	}
	if s, err := LoadSettings(path); err != nil || s.Challenge != "dns-01" {
		t.Errorf("settings after the renewal: challenge %q, %v; want dns-01 remembered", s.Challenge, err)
	}
}

// TestRenewerStorageRefuses: a certificate issued that storage refuses (a
// directory squats on its record, as a full disk refuses the write) is
// still written as files, and the run fails naming the storage, rather
// than throwing the certificate away (trial 28).
func TestRenewerStorageRefuses(t *testing.T) {
	e := newLocal(t, []string{"full.test"})
	e.refuseRecord(t, "full.test")
	results, err := e.r.Run(t.Context())
	if err != nil || len(results) != 1 {
		t.Fatal(err, results)
	}
	j := results[0]
	if j.Action != Failed || !strings.HasPrefix(j.Detail, "issued (not_after ") || !strings.Contains(j.Detail, "files written") ||
		!strings.Contains(j.Detail, "issued, but not kept") {
		t.Errorf("action %s, detail %q; want failed, saying the files were written but storage refused it", j.Action, j.Detail)
	}
	if _, _, err := e.r.Dir.Read("full.test"); err != nil {
		t.Errorf("the files after the run: %v; want the certificate", err)
	}
}

// TestRenewerDeployPending: a deploy hook that an earlier run did not see
// through (it failed here; a run killed while it ran leaves the same mark)
// is run again by the next run although the certificate is not due, and
// only once it succeeds is it done (trial 28: a run killed after the files
// were replaced left the server on the old certificate until it expired,
// every later run saying "not due").
func TestRenewerDeployPending(t *testing.T) {
	e := newLocal(t, []string{"hook.test"})
	e.r.Override.DeployHook = "reload the server"
	calls := 0
	fail := true
	e.r.AfterRenew = func(ctx context.Context, j *Result) error {
		calls++
		if j.Paths.Cert == "" || j.NotAfter.IsZero() {
			t.Errorf("AfterRenew got paths %+v, not_after %v; want the files in place", j.Paths, j.NotAfter)
		}
		if fail {
			return errors.New("deploy hook: exit status 1")
		}
		return nil
	}
	run := func() *Result { t.Helper(); return e.runOne(t) }
	if j := run(); j.Action != Failed || calls != 1 {
		t.Fatalf("first run: %s (%s), %d hook calls; want failed after one", j.Action, j.Detail, calls)
	}
	e.r.Want = nil
	fail = false
	if j := run(); j.Action != Deployed || calls != 2 || !strings.HasPrefix(j.Detail, "deploy hook run again") {
		t.Fatalf("second run: %s (%s), %d hook calls; want deployed, the hook run again", j.Action, j.Detail, calls)
	}
	if j := run(); j.Action != NotDue || calls != 2 {
		t.Fatalf("third run: %s (%s), %d hook calls; want not due, no hook", j.Action, j.Detail, calls)
	}
}

// TestRenewerNewDeployHookFails: a deploy hook given for the first time to
// a run that renews, and that fails, is not remembered, and the run says
// so and what to do; the deploy stays pending: a later run without the
// hook says it is pending, and the next one given the hook (fixed) runs it
// although the certificate is not due (a migration trial's server was left
// on the old certificate, every later run silent).
func TestRenewerNewDeployHookFails(t *testing.T) {
	e := newLocal(t, []string{"hook.test"})
	calls, fail := 0, true
	e.r.AfterRenew = func(ctx context.Context, j *Result) error { // as the command's: the deploy hook, if any
		if j.Settings.DeployHook == "" {
			return nil
		}
		calls++
		if fail {
			return errors.New("deploy hook: exit status 3")
		}
		return nil
	}
	run := func() *Result { t.Helper(); return e.runOne(t) }
	if j := run(); j.Action != Issued || calls != 0 {
		t.Fatalf("first run: %s (%s), %d hook calls; want issued, no hook", j.Action, j.Detail, calls)
	}
	e.r.Want, e.r.Force, e.r.Override.DeployHook = nil, true, "reload the server"
	if j := run(); j.Action != Failed || calls != 1 || !strings.Contains(j.Detail, "not remembered, as it failed: fix it and give --deploy-hook again") {
		t.Fatalf("renewal with a new hook that fails: %s (%s), %d hook calls; want failed, saying the hook is not remembered", j.Action, j.Detail, calls)
	}
	e.r.Force, e.r.Override.DeployHook = false, ""
	if j := run(); j.Action != NotDue || calls != 1 || !strings.Contains(j.Detail, "its deploy is pending") {
		t.Fatalf("a run without the hook: %s (%s), %d hook calls; want not due, saying the deploy is pending", j.Action, j.Detail, calls)
	}
	e.r.Override.DeployHook, fail = "reload the server", false
	if j := run(); j.Action != Deployed || calls != 2 {
		t.Fatalf("a run given the hook again: %s (%s), %d hook calls; want deployed", j.Action, j.Detail, calls)
	}
}

// TestRenewerWantOtherCA: a want-list entry written from a certificate in
// storage that another CA issued than --ca says so, naming both, and what
// to give if they are one CA (a migration trial typed .../dir for an
// import's .../directory, and its renewals went to a new account in
// silence); the same CA, or none given, says nothing of it.
func TestRenewerWantOtherCA(t *testing.T) {
	for _, tc := range []struct {
		ca   string
		said bool
	}{{"https://127.0.0.1:1/dir", true}, {"", false}, {"local", false}} {
		e := newLocal(t, []string{"moved.test"})
		if _, err := e.r.Run(t.Context()); err != nil { // stored by the local CA, files written
			t.Fatal(err)
		}
		if err := os.RemoveAll(string(e.r.Dir)); err != nil { // the files lost: storage holds it
			t.Fatal(err)
		}
		var said []string
		e.r.Progress = func(name, step string) { said = append(said, step) }
		e.r.Override.CA = tc.ca
		results, err := e.r.Run(t.Context())
		if err != nil || len(results) != 1 || results[0].Action != Written {
			t.Fatalf("--ca %q: %v, %v; want written from storage", tc.ca, results, err)
		}
		got := strings.Join(said, "\n")
		if want := "the certificate in storage is from local, not --ca " + tc.ca; strings.Contains(got, want) != tc.said {
			t.Errorf("--ca %q: said %q; want %q said: %v", tc.ca, got, want, tc.said)
		}
	}
}

// TestIssueFilesStorageRefuses: a first issuance (cert issue) whose
// certificate storage refuses (a full disk) writes the files all the
// same and says so; the certificate was lost (trial 28 finding 5).
func TestIssueFilesStorageRefuses(t *testing.T) {
	e := newLocal(t)
	e.refuseRecord(t, "first.test")
	got, paths, err := IssueFiles(t.Context(), e.r.Dir, e.st, certkeeper.IssueRequest{Names: []string{"first.test"}, Issuers: e.chain})
	if _, ok := errors.AsType[*certkeeper.UnstoredError](err); !ok || got == nil || !strings.Contains(err.Error(), "the certificate files are written ("+paths.Cert+")") {
		t.Fatalf("IssueFiles = %v, %+v, %v; want the certificate, its files and the storage's refusal", got, paths, err)
	}
	if _, _, err := e.r.Dir.Read("first.test"); err != nil {
		t.Errorf("the files after the issuance: %v; want the certificate", err)
	}
}

// TestRenewerStoredEmailNotRemembered: a certificate whose settings name
// no email renews with the one recorded with it in storage (its account),
// but that email is neither remembered in its settings nor reported as a
// change: nobody gave it (a docs trial read "email (none) -> ..." after a
// run that changed only --post-hook).
func TestRenewerStoredEmailNotRemembered(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	var emails []string
	var said []string
	r := &Renewer{
		Dir: dir, Storage: st,
		Issuers: func(ctx context.Context, s Settings) (*issuer.Chain, func(), error) {
			emails = append(emails, s.Email)
			return &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}, nil, nil
		},
		Progress: func(name, step string) { said = append(said, step) },
		Want:     [][]string{{"a.test"}},
		Override: Settings{Email: "ops@a.test"},
	}
	if _, err := r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(string(dir), "renewal", "a.test.conf")
	if err := SaveSettings(path, Settings{}); err != nil { // as cert issue without --email writes them
		t.Fatal(err)
	}
	emails, said = nil, nil
	r.Want, r.Force, r.Override = nil, true, Settings{PostHook: "true"}
	results, err := r.Run(t.Context())
	if err != nil || len(results) != 1 || results[0].Action != Renewed {
		t.Fatalf("Run = %v, %v; want a.test renewed", results, err)
	}
	if !slices.Equal(emails, []string{"ops@a.test"}) {
		t.Errorf("renewed with emails %q, want the one recorded with the certificate", emails)
	}
	got, err := LoadSettings(path)
	if err != nil || got.Email != "" || got.PostHook != "true" {
		t.Errorf("settings after the run = %+v, %v; want the post hook remembered and no email", got, err)
	}
	for _, s := range said {
		if strings.Contains(s, "email") {
			t.Errorf("said %q: the email was not given", s)
		}
	}
}
