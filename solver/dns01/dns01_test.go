package dns01_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"

	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	dnsexec "github.com/certkeeper/certkeeper/solver/dns01/exec"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// dnsEnv is a DNS server taking RFC 2136 updates (named or knotd) and a
// Pebble resolving through it.
type dnsEnv struct {
	srv updateServer
	ca  *testca.CA
}

// updateServer is what the tests use of testsvc.NamedServer and
// testsvc.KnotServer.
type updateServer interface {
	Addr() string
	KeyName() string
	Algorithm() string
	Secret() string
	Updates() int
	DigTXT(t testing.TB, name string) string
}

func newDNSEnv(t *testing.T, zones ...string) *dnsEnv {
	t.Helper()
	named := testsvc.Named(t, testsvc.NamedOptions{Zones: zones})
	ca := testca.Start(t, testca.Options{DNSServer: named.Addr()})
	return &dnsEnv{srv: named, ca: ca}
}

// provider is an RFC 2136 provider with the server's key.
func (e *dnsEnv) provider() *rfc2136.Provider {
	return &rfc2136.Provider{Server: e.srv.Addr(), KeyName: e.srv.KeyName(), Algorithm: e.srv.Algorithm(), Secret: e.srv.Secret()}
}

// resolver looks everything up at named, whose NS records say 127.0.0.1.
func (e *dnsEnv) resolver() dns01.Resolver {
	_, port, _ := net.SplitHostPort(e.srv.Addr())
	p, _ := strconv.Atoi(port)
	return dns01.Resolver{Servers: []string{e.srv.Addr()}, AuthoritativePort: p}
}

func (e *dnsEnv) solver(p dns01.Provider) *dns01.Solver {
	return &dns01.Solver{Provider: p, Resolver: e.resolver(), PropagationInterval: 50 * time.Millisecond, PropagationTimeout: 10 * time.Second}
}

func (e *dnsEnv) issuer(t *testing.T, solvers map[string]solver.Solver) *acmeca.Issuer {
	return &acmeca.Issuer{DirectoryURL: e.ca.DirectoryURL(), HTTPClient: e.ca.HTTPClient(),
		Storage: filestore.New(t.TempDir()), Solvers: solvers}
}

func issue(ctx context.Context, t *testing.T, iss *acmeca.Issuer, names ...string) (*issuer.Certificate, error) {
	t.Helper()
	got, err := certkeeper.Issue(ctx, iss.Storage, certkeeper.IssueRequest{Names: names, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{iss}}})
	if err != nil {
		return nil, err
	}
	return got.Certificate, nil
}

// verify checks cert chains to Pebble's root for every host.
func (e *dnsEnv) verify(t *testing.T, cert *issuer.Certificate, hosts ...string) {
	t.Helper()
	inter := x509.NewCertPool()
	rest := cert.ChainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil && !c.Equal(cert.Leaf) {
			inter.AddCert(c)
		}
	}
	for _, h := range hosts {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: e.ca.IssuingRootPool(t), Intermediates: inter}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", h, err)
		}
	}
}

// TestWildcardRFC2136: *.a.test + a.test via dns-01 through RFC 2136 with
// TSIG; the certificate verifies for x.a.test and a.test, and no
// _acme-challenge record is left.
func TestWildcardRFC2136(t *testing.T) {
	t.Parallel()
	testWildcardRFC2136(t, newDNSEnv(t, "a.test"))
}

// TestKnotRFC2136: the RFC 2136 provider against Knot DNS, with both TSIG
// algorithms: wildcard + apex issued through Pebble resolving at knotd,
// nothing left in the zone afterwards, and a wrong secret refused.
func TestKnotRFC2136(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"hmac-sha256", "hmac-sha512"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			knot := testsvc.Knot(t, testsvc.KnotOptions{Algorithm: alg})
			testWildcardRFC2136(t, &dnsEnv{srv: knot, ca: testca.Start(t, testca.Options{DNSServer: knot.Addr()})})
		})
	}
	t.Run("wrong-secret", func(t *testing.T) {
		t.Parallel()
		knot := testsvc.Knot(t, testsvc.KnotOptions{})
		testWrongTSIGSecret(t, &dnsEnv{srv: knot, ca: testca.Start(t, testca.Options{DNSServer: knot.Addr()})})
	})
}

// testWildcardRFC2136 issues *.a.test + a.test through e's server.
func testWildcardRFC2136(t *testing.T, e *dnsEnv) {
	t.Helper()
	rec := &recording{Provider: e.provider()}
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNS01: e.solver(rec)})
	start := time.Now()
	cert, err := issue(t.Context(), t, iss, "*.a.test", "a.test")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	// Both records of the order were set before either was removed.
	want := "append a.test. _acme-challenge;append a.test. _acme-challenge;delete a.test. _acme-challenge;delete a.test. _acme-challenge"
	if got := strings.Join(rec.calls, ";"); got != want {
		t.Errorf("provider calls = %q, want %q", got, want)
	}
	t.Logf("wildcard + apex via dns-01 (RFC 2136) in %s", time.Since(start).Round(time.Millisecond))
	e.verify(t, cert, "x.a.test", "a.test")
	if got := e.srv.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test after issuance = %q, want nothing", got)
	}
	if n := e.srv.Updates(); n != 4 {
		t.Errorf("the server applied %d updates, want 4 (two records added, two deleted)", n)
	}
}

// TestWrongTSIGSecret: a wrong secret fails fast with an error naming the
// key and the server, and leaves nothing in the zone.
func TestWrongTSIGSecret(t *testing.T) {
	t.Parallel()
	testWrongTSIGSecret(t, newDNSEnv(t, "a.test"))
}

// testWrongTSIGSecret tries an issuance through e's server with a wrong
// secret.
func testWrongTSIGSecret(t *testing.T, e *dnsEnv) {
	t.Helper()
	p := e.provider()
	p.Secret = "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldCB3cm9uZyBzZWM="
	s := e.solver(p)
	logs := &testsvc.Buffer{}
	s.Logger = slog.New(slog.NewTextHandler(logs, nil))
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNS01: s})
	start := time.Now()
	_, err := issue(t.Context(), t, iss, "*.a.test", "a.test")
	took := time.Since(start)
	if err == nil {
		t.Fatal("Issue with a wrong TSIG secret succeeded")
	}
	for _, want := range []string{e.srv.KeyName(), e.srv.Addr()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), p.Secret) {
		t.Errorf("error %q contains the secret", err)
	}
	if took > 5*time.Second {
		t.Errorf("failing took %s, want fast", took)
	}
	t.Logf("wrong TSIG secret failed in %s: %v", took.Round(time.Millisecond), err)
	if got := e.srv.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q, want nothing", got)
	}
	if n := e.srv.Updates(); n != 0 {
		t.Errorf("the server applied %d updates, want 0", n)
	}
	// Nothing was set: no warning that a record was left (a trial).
	if strings.Contains(logs.String(), "not removed") {
		t.Errorf("the log warns of a record left behind, though the key was refused:\n%s", logs)
	}
}

// TestCNAMEDelegation: _acme-challenge.b.test is a CNAME into another
// zone; issuance updates the target and cleans it up. Pebble resolves
// through a recursive named, which follows the CNAME as a CA's resolver
// does.
func TestCNAMEDelegation(t *testing.T) {
	t.Parallel()
	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"b.test", "acme.test"}})
	resolver := named.Resolver(t)
	e := &dnsEnv{srv: named, ca: testca.Start(t, testca.Options{DNSServer: resolver.Addr()})}
	p := e.provider()
	cname := libdns.CNAME{Name: "_acme-challenge", TTL: time.Minute, Target: "b-delegated.acme.test."}
	if _, err := p.AppendRecords(t.Context(), "b.test.", []libdns.Record{cname}); err != nil {
		t.Fatalf("adding the CNAME: %v", err)
	}
	before := e.srv.Updates()
	rec := &recording{Provider: p}
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNS01: e.solver(rec)})
	cert, err := issue(t.Context(), t, iss, "b.test")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	e.verify(t, cert, "b.test")
	if want := []string{"append acme.test. b-delegated", "delete acme.test. b-delegated"}; strings.Join(rec.calls, ";") != strings.Join(want, ";") {
		t.Errorf("provider calls = %q, want %q", rec.calls, want)
	}
	if n := e.srv.Updates() - before; n != 2 {
		t.Errorf("named applied %d updates, want 2", n)
	}
	if got := e.srv.DigTXT(t, "b-delegated.acme.test"); got != "" {
		t.Errorf("dig TXT b-delegated.acme.test = %q, want nothing", got)
	}
}

// recording passes calls on to Provider and notes each zone and name.
type recording struct {
	dns01.Provider
	mu    sync.Mutex // guards calls
	calls []string
}

func (r *recording) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, s)
}

func (r *recording) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	r.note("append " + zone + " " + recs[0].RR().Name)
	return r.Provider.AppendRecords(ctx, zone, recs)
}

func (r *recording) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	r.note("delete " + zone + " " + recs[0].RR().Name)
	return r.Provider.DeleteRecords(ctx, zone, recs)
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestExecNsupdate: the exec provider with a shell script that calls
// nsupdate issues a certificate.
func TestExecNsupdate(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	nsupdate := testsvc.LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
	host, port, _ := net.SplitHostPort(e.srv.Addr())
	script := writeScript(t, `set -e
case "$1" in present) op=add ;; cleanup) op=delete ;; *) exit 2 ;; esac
[ "$2" = "$CERTKEEPER_FQDN" ] && [ "$3" = "$CERTKEEPER_VALUE" ]
printf 'server %s %s\nupdate %s %s 60 TXT "%s"\nsend\n' "$NS_HOST" "$NS_PORT" "$op" "$2" "$3" | "$NSUPDATE" -t 5 -y "$TSIG"
`)
	p := &dnsexec.Provider{Program: script, Env: []string{"NS_HOST=" + host, "NS_PORT=" + port, "NSUPDATE=" + nsupdate,
		"TSIG=" + e.srv.Algorithm() + ":" + e.srv.KeyName() + ":" + e.srv.Secret()}}
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNS01: e.solver(p)})
	cert, err := issue(t.Context(), t, iss, "a.test", "www.a.test")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	e.verify(t, cert, "a.test", "www.a.test")
	if n := e.srv.Updates(); n != 4 {
		t.Errorf("named applied %d updates, want 4", n)
	}
	if got := e.srv.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q, want nothing", got)
	}
}

// TestNeverPropagates: a provider that reports success and changes
// nothing fails after the propagation timeout, naming the record; the
// order does not hang.
func TestNeverPropagates(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	p := &dnsexec.Provider{Program: writeScript(t, "exit 0\n")}
	s := e.solver(p)
	s.PropagationTimeout = time.Second
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNS01: s})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := issue(ctx, t, iss, "a.test")
	took := time.Since(start)
	var perr *dns01.PropagationError
	if !errors.As(err, &perr) {
		t.Fatalf("Issue = %v, want a *dns01.PropagationError", err)
	}
	if !strings.Contains(err.Error(), "_acme-challenge.a.test") {
		t.Errorf("error %q does not name the record", err)
	}
	if took < time.Second || took > 5*time.Second {
		t.Errorf("failing took %s, want just over the 1s timeout", took)
	}
	t.Logf("never-propagating record failed after %s: %v", took.Round(time.Millisecond), err)
}

// TestZoneNamedOutright: a zone in Resolver.Zones needs no lookup (the
// resolver here answers nothing), and the longest that holds the name wins.
func TestZoneNamedOutright(t *testing.T) {
	t.Parallel()
	r := dns01.Resolver{Servers: []string{"127.0.0.1:1"}, Zones: []string{"test", "w.test.", "X.W.TEST"}}
	for name, want := range map[string]string{"_acme-challenge.w.test": "w.test.", "_acme-challenge.a.x.w.test.": "x.w.test.", "w.test": "w.test."} {
		if got, err := r.Zone(t.Context(), name); got != want || err != nil {
			t.Errorf("Zone(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
}

// TestExecLegoRaw: a hook written for lego's exec RAW mode
// (testdata/lego-exec-raw.sh: "present -- DOMAIN TOKEN KEYAUTH", the TXT
// value computed with openssl, set with nsupdate) issues a wildcard and its
// apex unchanged, and leaves nothing behind.
func TestExecLegoRaw(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	testsvc.LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
	testsvc.LookPath(t, "openssl", "install Debian's openssl")
	script, err := filepath.Abs("testdata/lego-exec-raw.sh")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.srv.Addr())
	p := &dnsexec.Provider{Program: script, Mode: dnsexec.ModeRaw, Env: []string{"NS_HOST=" + host, "NS_PORT=" + port,
		"TSIG=" + e.srv.Algorithm() + ":" + e.srv.KeyName() + ":" + e.srv.Secret()}}
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNS01: e.solver(p)})
	cert, err := issue(t.Context(), t, iss, "*.a.test", "a.test")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	e.verify(t, cert, "x.a.test", "a.test")
	if n := e.srv.Updates(); n != 4 {
		t.Errorf("named applied %d updates, want 4", n)
	}
	if got := e.srv.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q, want nothing", got)
	}
	// Outside the Solver there is no key authorization: RAW mode says so.
	_, err = p.AppendRecords(t.Context(), "a.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge", Text: "v"}})
	if err == nil || !strings.Contains(err.Error(), "dns01.Solver") {
		t.Errorf("AppendRecords in RAW mode: err = %v, want one saying it needs dns01.Solver", err)
	}
}

// TestWaitReports: while a record has not reached the nameservers, Wait
// tells OnWaiting which ones lack it, at most every 5 s (once in a 2 s
// wait: BIND on a loaded machine took most of a 1 s one to answer); without
// OnWaiting it logs the same at Info.
func TestWaitReports(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	chal := acme.Challenge{URL: "https://ca.test/chal/1", Token: "tok", KeyAuthorization: "tok.thumb",
		Identifier: acme.Identifier{Type: "dns", Value: "a.test"}}
	wait := func(s *dns01.Solver) error {
		t.Helper()
		s.PropagationTimeout = 2 * time.Second
		if err := s.Present(t.Context(), chal); err != nil {
			t.Fatalf("Present: %v", err)
		}
		return s.Wait(t.Context(), chal)
	}
	s := e.solver(&dnsexec.Provider{Program: writeScript(t, "exit 0\n")})
	var got []dns01.Waiting
	s.OnWaiting = func(w dns01.Waiting) { got = append(got, w) }
	// A check falls due when the timeout does (at 2 s); if the timeout
	// cuts it short, the error is still the last complete check's.
	s.PropagationInterval = time.Second
	if err := wait(s); !errors.As(err, new(*dns01.PropagationError)) || !strings.Contains(err.Error(), "does not serve the value yet") {
		t.Fatalf("Wait = %v, want a *dns01.PropagationError saying the nameserver does not serve the value", err)
	}
	if len(got) != 1 || got[0].Record != "_acme-challenge.a.test" || len(got[0].Missing) == 0 ||
		!strings.Contains(got[0].Missing[0], "127.0.0.1") || got[0].Timeout != 2*time.Second {
		t.Fatalf("OnWaiting was told %+v; want once, _acme-challenge.a.test missing at 127.0.0.1", got)
	}
	if l := got[0].String(); !strings.HasPrefix(l, "waiting for _acme-challenge.a.test TXT at ") || !strings.HasSuffix(l, "so far (up to 2s)") {
		t.Errorf("Waiting.String() = %q", l)
	}
	t.Logf("OnWaiting: %s", got[0])

	var logs strings.Builder
	s = e.solver(&dnsexec.Provider{Program: writeScript(t, "exit 0\n")})
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	_ = wait(s)
	if n := strings.Count(logs.String(), "level=INFO msg=\"waiting for dns-01 record"); n != 1 || !strings.Contains(logs.String(), "127.0.0.1") {
		t.Errorf("want one Info record naming the nameserver; logs:\n%s", logs.String())
	}
}

// presentAndWait presents a challenge for a.test through a provider that
// changes nothing, or p, and returns what Wait returned, how long it took
// and what OnWaiting was told.
func presentAndWait(t *testing.T, s *dns01.Solver) (time.Duration, []dns01.Waiting, error) {
	t.Helper()
	chal := acme.Challenge{URL: "https://ca.test/chal/1", Token: "tok", KeyAuthorization: "tok.thumb",
		Identifier: acme.Identifier{Type: "dns", Value: "a.test"}}
	var mu sync.Mutex
	var told []dns01.Waiting
	s.OnWaiting = func(w dns01.Waiting) { mu.Lock(); told = append(told, w); mu.Unlock() }
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatalf("Present: %v", err)
	}
	t.Cleanup(func() { _ = s.CleanUp(context.WithoutCancel(t.Context()), chal) })
	start := time.Now()
	err := s.Wait(t.Context(), chal)
	mu.Lock()
	defer mu.Unlock()
	return time.Since(start), told, err
}

// closedPort returns a loopback UDP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// TestPropagationUnreachable: when the zone's nameserver refuses the
// connection (the wrong port: trial 19 forgot the check port), the
// waiting lines say "connection refused", and Wait gives up after 3
// checks rather than the whole timeout, with advice about the address
// and port, not about the zone.
func TestPropagationUnreachable(t *testing.T) {
	t.Parallel()
	e := &dnsEnv{srv: testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})}
	s := e.solver(e.provider())
	s.Resolver.AuthoritativePort = closedPort(t)
	s.PropagationInterval = 200 * time.Millisecond
	s.PropagationTimeout = 20 * time.Second
	took, told, err := presentAndWait(t, s)
	var perr *dns01.PropagationError
	if !errors.As(err, &perr) {
		t.Fatalf("Wait = %v, want a *dns01.PropagationError", err)
	}
	if took > 5*time.Second {
		t.Errorf("Wait took %s, want it to give up after 3 refused checks", took)
	}
	msg := err.Error()
	for _, want := range []string{"connection refused", "AuthoritativePort", "SkipPropagationCheck", "3 checks in a row"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "zone") && strings.Contains(msg, "changing") {
		t.Errorf("error %q blames the zone", msg)
	}
	// Any line: the port was free when closedPort chose it, but another
	// test's server may hold it for a moment (a CI run saw the first check
	// answered, without the value).
	if !slices.ContainsFunc(told, func(w dns01.Waiting) bool { return strings.Contains(w.String(), "connection refused") }) {
		t.Errorf("OnWaiting was told %v, want a line saying connection refused", told)
	}
	t.Logf("%v\n%v", told, err)
}

// TestPropagationNameserversNotFound: when the resolvers do not know the
// zone's nameservers (a zone named outright that only its primary serves,
// the primary not given), Wait gives up after 3 checks, not the whole
// timeout, saying the nameservers could not be found and what finds them;
// a caller's deadline that ends the wait first gets the same reason.
func TestPropagationNameserversNotFound(t *testing.T) {
	t.Parallel()
	e := &dnsEnv{srv: testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})}
	blind := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{}}) // knows no zone
	s := e.solver(e.provider())
	s.Resolver.Servers = []string{blind.Addr()}
	s.Resolver.Zones = []string{"a.test"}
	s.PropagationInterval = 200 * time.Millisecond
	s.PropagationTimeout = 20 * time.Second
	took, _, err := presentAndWait(t, s)
	var perr *dns01.PropagationError
	if !errors.As(err, &perr) || !perr.NotFound() || !perr.FailedFast {
		t.Fatalf("Wait = %v, want a *dns01.PropagationError that failed fast, the nameservers not found", err)
	}
	if took > 5*time.Second {
		t.Errorf("Wait took %s, want it to give up after 3 checks", took)
	}
	for _, want := range []string{"gave up early, without waiting its", "could not be found 3 checks in a row", "Resolver.Primary", "SkipPropagationCheck"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	s.PropagationInterval = time.Second
	chal := acme.Challenge{URL: "https://ca.test/chal/2", Token: "tok2", KeyAuthorization: "tok2.thumb",
		Identifier: acme.Identifier{Type: "dns", Value: "b.a.test"}}
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	defer s.CleanUp(context.WithoutCancel(t.Context()), chal)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err = s.Wait(ctx, chal)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nameserver") {
		t.Errorf("Wait cut by the caller's deadline = %v, want the deadline and where the wait stood", err)
	}
	t.Logf("%v", err)
}

// TestCheck: Solver.Check finds the zone of a name's record (a wildcard's
// too) and asks the provider whether it may set it, setting nothing; a
// wrong key, and a name in no zone the servers know, fail it.
func TestCheck(t *testing.T) {
	t.Parallel()
	n := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	e := &dnsEnv{srv: n}
	s := e.solver(e.provider())
	before := testsvc.SOASerial(t, n.Addr(), "a.test")
	for _, name := range []string{"a.test", "x.a.test", "*.a.test"} {
		if err := s.Check(t.Context(), name); err != nil {
			t.Errorf("Check(%s): %v", name, err)
		}
	}
	if after := testsvc.SOASerial(t, n.Addr(), "a.test"); after != before {
		t.Errorf("Check changed the zone: serial %d → %d", before, after)
	}
	bad := e.provider()
	bad.Secret = base64.StdEncoding.EncodeToString(make([]byte, 32))
	if err := e.solver(bad).Check(t.Context(), "x.a.test"); err == nil || !strings.Contains(err.Error(), "BADSIG") || !strings.Contains(err.Error(), "_acme-challenge.x.a.test") {
		t.Errorf("Check with a wrong secret = %v, want BADSIG naming the record", err)
	}
	if err := s.Check(t.Context(), "b.test"); !errors.As(err, new(*dns01.ZoneError)) {
		t.Errorf("Check of a name in no known zone = %v, want a *dns01.ZoneError", err)
	}
}

// TestCheckPerName: with an update-policy that grants the key the
// records of some names only (a trial's least-privilege BIND), Check
// passes those names (a wildcard's too) and refuses another before any
// order, naming its record: the trial's order had been placed and then
// failed at the first update.
func TestCheckPerName(t *testing.T) {
	t.Parallel()
	n := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}, Records: []string{"_acme-challenge.only.a.test"}})
	e := &dnsEnv{srv: n}
	s := e.solver(e.provider())
	for _, name := range []string{"only.a.test", "*.only.a.test"} {
		if err := s.Check(t.Context(), name); err != nil {
			t.Errorf("Check(%s), a name the policy grants: %v", name, err)
		}
	}
	err := s.Check(t.Context(), "x.a.test")
	if err == nil || !strings.Contains(err.Error(), "REFUSED") || !strings.Contains(err.Error(), "_acme-challenge.x.a.test") {
		t.Errorf("Check(x.a.test), a name the policy does not grant = %v, want REFUSED naming its record", err)
	}
}

// TestPropagationStaleSecondary: when the primary serves the value and a
// nameserver answers without it, the error points at zone transfer and
// NOTIFY (or the timeout), not at the zone.
func TestPropagationStaleSecondary(t *testing.T) {
	t.Parallel()
	e := &dnsEnv{srv: testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})}
	stale := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}}) // the zone, never updated
	_, port, _ := net.SplitHostPort(stale.Addr())
	s := e.solver(e.provider())
	s.Resolver.AuthoritativePort, _ = strconv.Atoi(port)
	s.Resolver.Primary = e.srv.Addr()
	// Long enough for the primary to answer on a loaded machine (with 1 s,
	// and once with 3 s under the race detector, a CI run saw its query
	// time out, and the advice then blamed the zone; with 6 s, twice in a
	// session, named answered no query in the whole window while the rest
	// of the suite ran). A primary that served the value at one check and
	// not the last still counts as serving it (servedOnce).
	s.PropagationTimeout = 12 * time.Second
	_, told, err := presentAndWait(t, s)
	var perr *dns01.PropagationError
	if !errors.As(err, &perr) {
		t.Fatalf("Wait = %v, want a *dns01.PropagationError", err)
	}
	msg := err.Error()
	for _, want := range []string{"zone transfer, NOTIFY", "PropagationTimeout", "does not serve the value yet", stale.Addr()} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "is the provider changing") {
		t.Errorf("error %q blames the zone", msg)
	}
	if len(told) == 0 || strings.Contains(told[0].String(), "refused") {
		t.Errorf("OnWaiting was told %v", told)
	}
	t.Logf("%v", err)
}

// TestPropagationRefused: when the nameservers asked answer REFUSED (a
// server that does not serve the zone: a wrong check port or address, as
// a user trial had), the error says they refuse queries for the zone and
// points at the address and port the check asks, not at the provider or
// the timeout; and the check gives up early, though the primary serves
// the record (a DNS trial waited out the whole timeout).
func TestPropagationRefused(t *testing.T) {
	t.Parallel()
	e := &dnsEnv{srv: testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})}
	other := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{}}) // serves no zone: REFUSED
	_, port, _ := net.SplitHostPort(other.Addr())
	s := e.solver(e.provider())
	s.Resolver.AuthoritativePort, _ = strconv.Atoi(port)
	s.PropagationTimeout = time.Minute // the check gives up well before it
	s.Resolver.Primary = e.srv.Addr()  // which serves the record: the others are asked all the same
	start := time.Now()
	_, _, err := presentAndWait(t, s)
	var perr *dns01.PropagationError
	if !errors.As(err, &perr) {
		t.Fatalf("Wait = %v, want a *dns01.PropagationError", err)
	}
	if took := time.Since(start); !perr.FailedFast || took > 45*time.Second || !strings.Contains(err.Error(), "gave up early") {
		t.Errorf("the check waited %v (gave up early: %v); want it to give up after 3 checks", took, perr.FailedFast)
	}
	if len(perr.Refusing) != 1 || len(perr.Lacking) != 1 || perr.Refusing[0] != perr.Lacking[0] || len(perr.Served) != 1 {
		t.Errorf("Refusing = %v, Lacking = %v, Served = %v: want the one nameserver in both, and the primary serving", perr.Refusing, perr.Lacking, perr.Served)
	}
	msg := err.Error()
	for _, want := range []string{"answered REFUSED", "refuses queries for the zone (REFUSED or NOTAUTH), so it does not serve it",
		"AuthoritativePort", "Resolver.Servers", other.Addr()} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	for _, wrong := range []string{"is the provider changing", "PropagationTimeout"} {
		if strings.Contains(msg, wrong) {
			t.Errorf("error %q says %q", msg, wrong)
		}
	}
	t.Logf("%v", err)
}

// TestZoneNoAnswer: when no DNS server answers the zone lookup (nothing
// listens: trial 19 had the server down), the error says so and asks
// whether it runs at the addresses asked; when servers answer but do not
// know the zone, it keeps the advice to name the zone.
func TestZoneNoAnswer(t *testing.T) {
	t.Parallel()
	resolver := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	primary := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	r := dns01.Resolver{Servers: []string{resolver}, Primary: primary}
	_, err := r.Zone(t.Context(), "_acme-challenge.a.test")
	var zerr *dns01.ZoneError
	if !errors.As(err, &zerr) || !zerr.NoAnswer {
		t.Fatalf("Zone = %v, want a *dns01.ZoneError with NoAnswer", err)
	}
	for _, want := range []string{"no DNS server answered (connection refused)", "running and reachable at " + resolver + ", " + primary} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "Resolver.Zones") {
		t.Errorf("error %q advises naming the zone", err)
	}
	t.Logf("%v", err)

	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	r = dns01.Resolver{Servers: []string{named.Addr()}, Primary: named.Addr()}
	_, err = r.Zone(t.Context(), "_acme-challenge.b.test")
	if !errors.As(err, &zerr) || zerr.NoAnswer || !strings.Contains(err.Error(), "name the zone in Resolver.Zones") {
		t.Errorf("Zone of a name the server does not know = %v, want a *dns01.ZoneError naming Resolver.Zones", err)
	}
	// The resolver is the primary: asked once, named once.
	if n := strings.Count(err.Error(), named.Addr()); n != 2 || !strings.Contains(err.Error(), "the primary (Resolver.Primary) among them") {
		t.Errorf("error %q names %s %d times, want twice (the servers asked, and the one that answered REFUSED) and the primary among the resolvers", err, named.Addr(), n)
	}
	t.Logf("%v", err)
}

// TestZoneNamedWrong: a zone named in Resolver.Zones that does not hold
// the record is not used silently: Check (before an order) and Present
// look the zone up and log a warning naming both, once (trial 19 gave
// --dns-zone other.test for a.test).
func TestZoneNamedWrong(t *testing.T) {
	t.Parallel()
	e := &dnsEnv{srv: testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})}
	rec := &recording{Provider: e.provider()}
	s := e.solver(rec)
	s.Resolver.Zones = []string{"other.test"}
	var logs strings.Builder
	s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	// Check, before an order, says so already (a DNS trial saw it only
	// after "order created"), and Present does not say it again.
	if err := s.Check(t.Context(), "a.test"); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !strings.Contains(logs.String(), "none of the zones given") {
		t.Errorf("Check did not warn of the zone given:\n%s", logs.String())
	}
	chal := acme.Challenge{URL: "https://ca.test/chal/1", Token: "tok", KeyAuthorization: "tok.thumb",
		Identifier: acme.Identifier{Type: "dns", Value: "a.test"}}
	if err := s.Present(t.Context(), chal); err != nil {
		t.Fatalf("Present: %v", err)
	}
	defer s.CleanUp(context.WithoutCancel(t.Context()), chal)
	if got := strings.Join(rec.calls, ";"); got != "append a.test. _acme-challenge" {
		t.Errorf("provider calls = %q, want the record in a.test.", got)
	}
	l := logs.String()
	if n := strings.Count(l, "none of the zones given"); n != 1 {
		t.Errorf("warned %d times, want once", n)
	}
	if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "none of the zones given") || !strings.Contains(l, "zones=[other.test]") || !strings.Contains(l, "zone=a.test.") {
		t.Errorf("want a warning naming the zones given (other.test) and the zone looked up; logs:\n%s", l)
	}
	t.Log(l)
}

// TestPropagationPrimaryPort: trial 19's setup: the primary (the server
// updated, on a test port) serves the value, and the nameserver its NS
// record names is asked on port 53 of the same host, where nothing
// listens. The error says the primary is on that host, with its port.
func TestPropagationPrimaryPort(t *testing.T) {
	t.Parallel()
	e := &dnsEnv{srv: testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})}
	s := e.solver(e.provider())
	s.Resolver.AuthoritativePort = closedPort(t)
	s.Resolver.Primary = e.srv.Addr()
	s.PropagationTimeout = 2 * time.Second // BIND must answer within it: 1 s timed out once under the race detector
	_, told, err := presentAndWait(t, s)
	_, port, _ := net.SplitHostPort(e.srv.Addr())
	for _, want := range []string{"served by primary (" + e.srv.Addr() + ")", "the primary " + e.srv.Addr() + " is on that host: is its port " + port,
		"AuthoritativePort"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Wait = %v, want an error saying %q", err, want)
		}
	}
	if len(told) == 0 || !strings.Contains(told[0].String(), "connection refused") {
		t.Errorf("OnWaiting was told %v, want a line saying connection refused", told)
	}
	t.Logf("%v", err)
}

// TestResolverDefaultPort: a resolver or primary given without a port
// (as /etc/resolv.conf writes them) is asked on port 53, where it was
// an address the dialer refused ("missing port in address"). The context
// is cancelled, so nothing is sent: the error names the servers asked.
func TestResolverDefaultPort(t *testing.T) {
	t.Parallel()
	r := dns01.Resolver{Servers: []string{"127.0.0.1", "::1", "[::1]", "127.0.0.1:5353"}, Primary: "127.0.0.1"}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.Zone(ctx, "_acme-challenge.a.test")
	var zerr *dns01.ZoneError
	if !errors.As(err, &zerr) {
		t.Fatalf("Zone = %v, want a *dns01.ZoneError", err)
	}
	if got := strings.Join(zerr.Resolvers, " "); got != "127.0.0.1:53 [::1]:53 [::1]:53 127.0.0.1:5353" || zerr.Primary != "127.0.0.1:53" {
		t.Errorf("asked resolvers %q and primary %q, want each on port 53 unless given", got, zerr.Primary)
	}
}
