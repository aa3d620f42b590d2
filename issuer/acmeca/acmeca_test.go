package acmeca_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/mholt/acmez/v3/acme"
)

// env is one Pebble with both challenge listeners running on the ports its
// validation authority uses.
type env struct {
	ca      *testca.CA
	http01  *http01.Solver
	alpn    *tlsalpn01.Solver
	storage storage.Storage
}

func newEnv(t *testing.T, opts testca.Options) *env {
	t.Helper()
	ca := testca.Start(t, opts)
	e := &env{ca: ca, http01: &http01.Solver{}, alpn: &tlsalpn01.Solver{}, storage: filestore.New(t.TempDir())}
	hs, err := e.http01.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hs.Close() })
	ts, err := e.alpn.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	return e
}

// throughProxy starts a fault-injecting proxy in front of e's Pebble and
// returns it with a maker of http-01 Issuers that reach Pebble through it.
func (e *env) throughProxy(t *testing.T) (*testca.FaultProxy, func() *acmeca.Issuer) {
	proxy := testca.NewFaultProxy(t, e.ca)
	return proxy, func() *acmeca.Issuer {
		iss := e.issuer(acmeca.HTTP01)
		iss.DirectoryURL = proxy.DirectoryURL()
		return iss
	}
}

// issuer returns an Issuer for this Pebble answering only challenge typ.
func (e *env) issuer(typ string) *acmeca.Issuer {
	solvers := map[string]solver.Solver{}
	switch typ {
	case acmeca.HTTP01:
		solvers[typ] = e.http01
	case acmeca.TLSALPN01:
		solvers[typ] = e.alpn
	default:
		solvers[acmeca.HTTP01] = e.http01
		solvers[acmeca.TLSALPN01] = e.alpn
	}
	return &acmeca.Issuer{
		DirectoryURL: e.ca.DirectoryURL(),
		Email:        "ops@a.test",
		Storage:      e.storage,
		Solvers:      solvers,
		HTTPClient:   e.ca.HTTPClient(),
		Profile:      "default",
	}
}

// issue orders a certificate for names with a new key of type kt.
func issue(t *testing.T, iss *acmeca.Issuer, kt issuer.KeyType, names ...string) (*issuer.Certificate, crypto.Signer) {
	t.Helper()
	cert, key, err := tryIssue(t, iss, kt, nil, names...)
	if err != nil {
		t.Fatalf("Issue(%v): %v", names, err)
	}
	return cert, key
}

func tryIssue(t *testing.T, iss *acmeca.Issuer, kt issuer.KeyType, replaces *x509.Certificate, names ...string) (*issuer.Certificate, crypto.Signer, error) {
	t.Helper()
	key, err := kt.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, names)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := iss.Issue(t.Context(), issuer.Request{Names: names, CSR: csr, Replaces: replaces})
	return cert, key, err
}

// verify checks the chain against Pebble's issuing roots for every name.
func (e *env) verify(t *testing.T, cert *issuer.Certificate, names ...string) {
	t.Helper()
	certs, err := parsePEMChain(cert.ChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, n := range names {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: n, Roots: e.ca.IssuingRootPool(t), Intermediates: inter}); err != nil {
			t.Errorf("certificate does not verify for %s against Pebble's root: %v", n, err)
		}
	}
}

func parsePEMChain(chain []byte) ([]*x509.Certificate, error) {
	rec := &storage.Certificate{ChainPEM: chain}
	leaf, err := rec.Leaf()
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	out = append(out, leaf)
	rest := chain
	for {
		var der []byte
		der, rest = nextPEM(rest)
		if der == nil {
			break
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		if !c.Equal(leaf) {
			out = append(out, c)
		}
	}
	return out, nil
}

func TestIssueEachChallenge(t *testing.T) {
	e := newEnv(t, testca.Options{})
	for _, typ := range []string{acmeca.TLSALPN01, acmeca.HTTP01} {
		t.Run(typ, func(t *testing.T) {
			iss := e.issuer(typ)
			names := []string{"a.test", "www.a.test"}
			cert, key := issue(t, iss, issuer.ECDSAP256, names...)
			e.verify(t, cert, names...)
			if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.Leaf.PublicKey) {
				t.Error("leaf key does not match the CSR key")
			}
			if cert.Issuer != iss.ID() || cert.URL == "" || cert.Account == "" {
				t.Errorf("certificate metadata = issuer %q url %q account %q", cert.Issuer, cert.URL, cert.Account)
			}
		})
	}
}

func TestAccountReuseAndRecovery(t *testing.T) {
	e := newEnv(t, testca.Options{})
	first := e.issuer(acmeca.HTTP01)
	if has, err := first.HasAccount(t.Context()); has || err != nil {
		t.Fatalf("HasAccount on empty storage = %v, %v; want false, nil", has, err)
	}
	issue(t, first, issuer.ECDSAP256, "a.test")
	if has, err := first.HasAccount(t.Context()); !has || err != nil {
		t.Fatalf("HasAccount after an issuance = %v, %v; want true, nil", has, err)
	}
	acct1, err := first.Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// A new process on the same storage reuses the account.
	second := e.issuer(acmeca.HTTP01)
	issue(t, second, issuer.ECDSAP256, "b.test")
	acct2, _ := second.Account(t.Context())
	if acct2.Location != acct1.Location {
		t.Errorf("second issuer's account = %s, want the stored %s", acct2.Location, acct1.Location)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("Pebble saw %d new accounts, want 1", n)
	}
	// The record is lost but the key kept: the same account is found again.
	recKey, _ := storage.AccountKey(first.ID(), "ops@a.test")
	if err := e.storage.Delete(t.Context(), recKey); err != nil {
		t.Fatal(err)
	}
	third := e.issuer(acmeca.HTTP01)
	if has, err := third.HasAccount(t.Context()); !has || err != nil {
		t.Errorf("HasAccount with the key but not the record = %v, %v; want true (the account can be recovered)", has, err)
	}
	issue(t, third, issuer.ECDSAP256, "c.test")
	acct3, _ := third.Account(t.Context())
	if acct3.Location != acct1.Location {
		t.Errorf("recovered account = %s, want %s", acct3.Location, acct1.Location)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("Pebble saw %d new accounts after recovery, want 1", n)
	}
	if _, err := e.storage.Load(t.Context(), recKey); err != nil {
		t.Errorf("account record not stored again after recovery: %v", err)
	}
}

// TestNonceRejection: with half of all nonces refused, every issuance
// still succeeds (certkeeper retries a step the library gave up on).
func TestNonceRejection(t *testing.T) {
	e := newEnv(t, testca.Options{NonceReject: 50})
	iss := e.issuer(acmeca.TLSALPN01)
	for i := range 10 {
		name := fmt.Sprintf("n%d.a.test", i)
		cert, _ := issue(t, iss, issuer.ECDSAP256, name)
		e.verify(t, cert, name)
	}
}

func TestProfiles(t *testing.T) {
	e := newEnv(t, testca.Options{Profiles: map[string]testca.Profile{
		"default":    {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
		"shortlived": {Description: "5 minutes", ValidityPeriod: 300 * time.Second},
	}})
	iss := e.issuer(acmeca.HTTP01)
	iss.Profile = "shortlived"
	cert, _ := issue(t, iss, issuer.ECDSAP256, "short.a.test")
	if life := cert.Leaf.NotAfter.Sub(cert.Leaf.NotBefore); life > 300*time.Second {
		t.Errorf("shortlived certificate valid for %s, want ≤ 300s", life)
	}
	if cert.Profile != "shortlived" {
		t.Errorf("Profile = %q, want shortlived", cert.Profile)
	}

	orders := e.ca.Orders()
	bad := e.issuer(acmeca.HTTP01)
	bad.Profile = "nonesuch"
	_, _, err := tryIssue(t, bad, issuer.ECDSAP256, nil, "x.a.test")
	if !errors.Is(err, acmeca.ErrUnknownProfile) {
		t.Fatalf("Issue with an unknown profile: err = %v, want ErrUnknownProfile", err)
	}
	for _, p := range []string{"default", "shortlived"} {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name the offered profile %q", err, p)
		}
	}
	if n := e.ca.Orders(); n != orders {
		t.Errorf("an unknown profile placed %d orders, want 0", n-orders)
	}
}

// TestEAB: a CA that requires external account binding accepts an account
// bound with the right key, and a missing binding fails with a message
// saying what to set (the field: the library knows no flags).
func TestEAB(t *testing.T) {
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	e := newEnv(t, testca.Options{EAB: map[string]string{kid: hmac}, EABRequired: true})
	without := e.issuer(acmeca.HTTP01)
	_, _, err := tryIssue(t, without, issuer.ECDSAP256, nil, "eab.a.test")
	if !errors.Is(err, acmeca.ErrEABRequired) || !strings.Contains(err.Error(), "set EAB") || strings.Contains(err.Error(), "--") {
		t.Errorf("Issue without EAB: err = %v, want ErrEABRequired naming the EAB field and no flag", err)
	}
	with := e.issuer(acmeca.HTTP01)
	with.EAB = &acme.EAB{KeyID: kid, MACKey: hmac}
	cert, _ := issue(t, with, issuer.ECDSAP256, "eab.a.test")
	e.verify(t, cert, "eab.a.test")
}

func TestIPCertificate(t *testing.T) {
	e := newEnv(t, testca.Options{})
	for _, typ := range []string{acmeca.HTTP01, acmeca.TLSALPN01} {
		t.Run(typ, func(t *testing.T) {
			cert, _ := issue(t, e.issuer(typ), issuer.ECDSAP256, "127.0.0.1")
			if len(cert.Leaf.IPAddresses) != 1 || !cert.Leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
				t.Errorf("leaf IP SANs = %v, want [127.0.0.1]", cert.Leaf.IPAddresses)
			}
		})
	}
}

func TestPreferredChain(t *testing.T) {
	e := newEnv(t, testca.Options{AlternateRoots: 1})
	roots := e.ca.IssuingRoots(t)
	if len(roots) < 2 {
		t.Fatalf("Pebble offers %d roots, want 2", len(roots))
	}
	for _, root := range roots {
		t.Run(root.Subject.CommonName, func(t *testing.T) {
			iss := e.issuer(acmeca.HTTP01)
			iss.PreferredChain = root.Subject.CommonName
			cert, _ := issue(t, iss, issuer.ECDSAP256, "chain.a.test")
			certs, err := parsePEMChain(cert.ChainPEM)
			if err != nil {
				t.Fatal(err)
			}
			top := certs[len(certs)-1]
			if top.Issuer.CommonName != root.Subject.CommonName {
				t.Errorf("chain tops out at a certificate issued by %q, want %q", top.Issuer.CommonName, root.Subject.CommonName)
			}
		})
	}
	// A name no chain ends at: the default chain, and the progress says
	// which names the CA offers.
	iss := e.issuer(acmeca.HTTP01)
	iss.PreferredChain = "ISRG Root X1"
	var said []string
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, []string{"nochain.a.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Issue(t.Context(), issuer.Request{Names: []string{"nochain.a.test"}, CSR: csr,
		Progress: func(s string) { said = append(said, s) }}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`no chain the CA offers ends at "ISRG Root X1" (it offers chains ending at %q, %q)`, roots[0].Subject.CommonName, roots[1].Subject.CommonName)
	if !slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, want) }) {
		t.Errorf("progress %q lacks %q", said, want)
	}
}

// TestReplaces: a renewal carries ARI "replaces"; a second replacement of
// the same certificate is refused by the CA and certkeeper orders again
// without it rather than failing.
func TestReplaces(t *testing.T) {
	e := newEnv(t, testca.Options{})
	iss := e.issuer(acmeca.HTTP01)
	first, _ := issue(t, iss, issuer.ECDSAP256, "r.a.test")
	if _, _, err := tryIssue(t, iss, issuer.ECDSAP256, first.Leaf, "r.a.test"); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	if n := e.ca.Replacements(); n != 1 {
		t.Errorf("Pebble saw %d replacement orders, want 1", n)
	}
	// The same certificate replaced again: alreadyReplaced, then a plain order.
	if _, _, err := tryIssue(t, iss, issuer.ECDSAP256, first.Leaf, "r.a.test"); err != nil {
		t.Fatalf("second renewal of the same certificate: %v", err)
	}
	if n := e.ca.Replacements(); n != 1 {
		t.Errorf("Pebble saw %d replacement orders after the refused one, want still 1", n)
	}
}

// TestCARestart: a CA that lost every account (a new Pebble on the same
// address) makes certkeeper register again and succeed.
func TestCARestart(t *testing.T) {
	e := newEnv(t, testca.Options{})
	iss := e.issuer(acmeca.HTTP01)
	first, _ := issue(t, iss, issuer.ECDSAP256, "restart.a.test")
	e.ca.Restart(t)
	cert, _, err := tryIssue(t, iss, issuer.ECDSAP256, first.Leaf, "restart.a.test")
	if err != nil {
		t.Fatalf("issuing after the CA lost its state: %v", err)
	}
	if cert.Account == first.Account {
		t.Logf("account URL unchanged after re-registration: %s", cert.Account)
	}
	if n := e.ca.Accounts(); n != 1 {
		t.Errorf("restarted Pebble saw %d new accounts, want 1", n)
	}
}

func TestRateLimited(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	// Register the account first, so the rate limit hits the order.
	issue(t, newIssuer(), issuer.ECDSAP256, "warm.a.test")

	t.Run("no-wait", func(t *testing.T) {
		proxy.RateLimit("new-order", 1, 5*time.Second)
		iss := newIssuer()
		iss.NoWait = true
		start := time.Now()
		_, _, err := tryIssue(t, iss, issuer.ECDSAP256, nil, "rl.a.test")
		var ierr *issuer.Error
		if !errors.As(err, &ierr) || !errors.Is(err, issuer.ErrRateLimited) {
			t.Fatalf("err = %v, want a rate-limited *issuer.Error", err)
		}
		if d := ierr.RetryAfter.Sub(start); d < 4*time.Second || d > 7*time.Second {
			t.Errorf("RetryAfter is %s after the request, want about 5s", d)
		}
		if time.Since(start) > 3*time.Second {
			t.Errorf("NoWait waited %s", time.Since(start))
		}
	})
	t.Run("wait", func(t *testing.T) {
		proxy.RateLimit("new-order", 1, 5*time.Second)
		start := time.Now()
		cert, _, err := tryIssue(t, newIssuer(), issuer.ECDSAP256, nil, "rl.a.test")
		if err != nil {
			t.Fatalf("Issue after a rateLimited answer: %v", err)
		}
		if d := time.Since(start); d < 5*time.Second {
			t.Errorf("succeeded after %s, want ≥ 5s (the Retry-After)", d)
		}
		e.verify(t, cert, "rl.a.test")
	})
}

// TestSlowRenewalInfo: a CA whose renewalInfo hangs does not hold the
// certificate it signed. The acme package asks for the window inside the
// download; the request is bounded, and the certificate comes without one
// (a trial saw the download wait out the whole issuance's deadline, and the
// storing after it fail).
func TestSlowRenewalInfo(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	proxy.PauseAt("renewal-info")
	iss := newIssuer()
	acmeca.SetRenewalInfoBudget(iss, time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, []string{"ari.a.test"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	cert, err := iss.Issue(ctx, issuer.Request{Names: []string{"ari.a.test"}, CSR: csr})
	if err != nil {
		t.Fatalf("Issue with a hanging renewalInfo: %v", err)
	}
	// The budget, and the acme package's pauses of 2 s and 5 s between
	// its attempts.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Issue took %s with renewalInfo's budget at 1s: the download waited for it", d)
	}
	if ctx.Err() != nil {
		t.Errorf("the issuance's context is done after Issue: %v", ctx.Err())
	}
	if cert.RenewalWindow != nil {
		t.Errorf("RenewalWindow = %+v from a renewalInfo that never answered", cert.RenewalWindow)
	}
	e.verify(t, cert, "ari.a.test")

	proxy.Resume()
	cert, _ = issue(t, iss, issuer.ECDSAP256, "ari2.a.test")
	if cert.RenewalWindow == nil {
		t.Error("no RenewalWindow once renewalInfo answers")
	}
}

// TestStuckOrderSaysSo: an order the CA never finishes signing ends with
// the issuance's deadline, in an error that says the order was still
// processing and for how long (a trial's ended in a bare "context
// deadline exceeded", which reads as a network failure).
func TestStuckOrderSaysSo(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	proxy.StallOrders(true)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	key, err := issuer.ECDSAP256.Generate()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := issuer.NewCSR(key, []string{"stuck.a.test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = newIssuer().Issue(ctx, issuer.Request{Names: []string{"stuck.a.test"}, CSR: csr})
	if err == nil {
		t.Fatal("issued although every order stayed processing")
	}
	if msg := err.Error(); !strings.Contains(msg, "the order is still processing") || !strings.Contains(msg, "had not signed the certificate after") || !strings.Contains(msg, "/my-order/") {
		t.Errorf("err = %v; want it to name the order and say it was still processing", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v; want it to wrap the deadline", err)
	}
	t.Log(err)
}

func TestProblemIsTyped(t *testing.T) {
	e := newEnv(t, testca.Options{DomainBlocklist: []string{"blocked.test"}})
	_, _, err := tryIssue(t, e.issuer(acmeca.HTTP01), issuer.ECDSAP256, nil, "blocked.test")
	var p acme.Problem
	var ierr *issuer.Error
	if !errors.As(err, &ierr) || !errors.As(err, &p) {
		t.Fatalf("err = %v (%T), want *issuer.Error wrapping acme.Problem", err, err)
	}
	if p.Type != acme.ProblemTypeRejectedIdentifier {
		t.Errorf("problem type = %q, want rejectedIdentifier", p.Type)
	}
	if !errors.Is(err, issuer.ErrNameRejected) || !strings.Contains(err.Error(), "retrying does not help") {
		t.Errorf("err = %v, want ErrNameRejected saying that retrying does not help", err)
	}
	if strings.Contains(err.Error(), "attempt ") {
		t.Errorf("err = %v: the acme package's attempt count is no news to its reader", err)
	}
}

// TestReplacesServerError: a CA that answers an order carrying replaces
// with a server error (as Pebble does for a certificate it cannot match to
// an order) still gets the renewal: certkeeper orders again without it.
func TestReplacesServerError(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	iss := newIssuer()
	first, _ := issue(t, iss, issuer.ECDSAP256, "se.a.test")
	// Every new-order attempt with replaces fails (4 tries); the plain one
	// after them succeeds.
	proxy.ServiceUnavailable("new-order", 4, 0)
	if _, _, err := tryIssue(t, iss, issuer.ECDSAP256, first.Leaf, "se.a.test"); err != nil {
		t.Fatalf("renewal after server errors on the replacement order: %v", err)
	}
}

// TestReplacesOtherAccount: a renewal whose replaces names a certificate
// another account ordered (another node of a cluster that registered its
// own account) is refused by Pebble with "unauthorized: requester account
// did not request the certificate being replaced". That is no sign of a
// lost account: certkeeper orders again without replaces and does not
// register its account again, which it does only for accountDoesNotExist.
func TestReplacesOtherAccount(t *testing.T) {
	e := newEnv(t, testca.Options{})
	first, _ := issue(t, e.issuer(acmeca.HTTP01), issuer.ECDSAP256, "other.a.test")
	e.ca.WaitForLog(t, "Issued certificate serial")

	other := e.issuer(acmeca.HTTP01)
	other.Storage = filestore.New(t.TempDir()) // its own account
	logs := &testsvc.Buffer{}
	other.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if _, err := other.Account(t.Context()); err != nil {
		t.Fatal(err)
	}
	cert, _, err := tryIssue(t, other, issuer.ECDSAP256, first.Leaf, "other.a.test")
	if err != nil {
		t.Fatalf("renewal of another account's certificate: %v", err)
	}
	if cert.Account == first.Account {
		t.Fatalf("both issuers ordered with account %s, want two accounts", cert.Account)
	}
	out := logs.String()
	t.Logf("logs:\n%s", out)
	if !strings.Contains(out, "requester account did not request") || !strings.Contains(out, "ordering without replaces") {
		t.Errorf("logs lack the refused replacement and the plain order after it")
	}
	if strings.Contains(out, "registering again") {
		t.Errorf("the issuer registered its account again after a refusal that is not accountDoesNotExist")
	}
	if n := e.ca.Replacements(); n != 0 {
		t.Errorf("Pebble accepted %d replacement orders, want 0", n)
	}
}

// TestUnreachableLater: a CA that goes away after the directory was
// fetched (a renewal's requests: a nonce, an order) is ErrUnreachable
// too, as at the first request, naming the step; it was the HTTP
// client's error alone (trial 13).
func TestUnreachableLater(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	iss := newIssuer()
	issue(t, iss, issuer.ECDSAP256, "down.a.test")
	proxy.Down()
	_, _, err := tryIssue(t, iss, issuer.ECDSAP256, nil, "down.a.test")
	if !errors.Is(err, acmeca.ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach the ACME CA at "+proxy.DirectoryURL()) {
		t.Errorf("issuing with the CA down: %v; want ErrUnreachable naming the CA", err)
	}
	if strings.Count(err.Error(), "cannot reach") != 1 || strings.Contains(err.Error(), "\n") {
		t.Errorf("the error says it twice, or over lines: %q", err)
	}
	if errors.Is(err, acmeca.ErrCANotTrusted) {
		t.Errorf("a CA that is down counts as untrusted (a root would not help): %v", err)
	}
}

// TestUntrustedOrDown: a directory behind an HTTPS certificate the client
// does not trust is ErrCANotTrusted (give the root); one where nothing
// listens is ErrUnreachable alone, saying the CA may be down.
func TestUntrustedOrDown(t *testing.T) {
	e := newEnv(t, testca.Options{})
	iss := e.issuer(acmeca.HTTP01)
	iss.HTTPClient = &http.Client{Timeout: 10 * time.Second} // the system roots: not Pebble's
	_, err := iss.Profiles(t.Context())
	if !errors.Is(err, acmeca.ErrUnreachable) || !errors.Is(err, acmeca.ErrCANotTrusted) {
		t.Errorf("untrusted CA: %v; want ErrUnreachable and ErrCANotTrusted", err)
	}
	// A port closed here may be taken at once by a server another test
	// package starts (the external CI once found a Pebble there): a fresh
	// port is tried then, three times at most.
	down := func() error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		iss := e.issuer(acmeca.HTTP01)
		iss.DirectoryURL = "https://" + addr + "/dir"
		_, err = iss.Profiles(t.Context())
		return err
	}
	for attempt := 1; ; attempt++ {
		err = down()
		if errors.Is(err, acmeca.ErrUnreachable) && !errors.Is(err, acmeca.ErrCANotTrusted) && strings.Contains(err.Error(), "the CA may be down") {
			break
		}
		if attempt == 3 {
			t.Errorf("CA down: %v; want ErrUnreachable saying it may be down, not ErrCANotTrusted", err)
			break
		}
	}
}

// TestRegisterBesideOthers: registering an account for an email when
// storage holds another at the same CA (one certkeeper import brought in
// without a contact) warns, naming the stored ones; the first account
// registers without a warning.
func TestRegisterBesideOthers(t *testing.T) {
	e := newEnv(t, testca.Options{})
	st := filestore.New(t.TempDir())
	register := func(email string) string {
		iss := e.issuer(acmeca.HTTP01)
		iss.Storage, iss.Email = st, email
		logs := &testsvc.Buffer{}
		iss.Logger = slog.New(slog.NewTextHandler(logs, nil))
		if _, err := iss.Account(t.Context()); err != nil {
			t.Fatal(err)
		}
		return logs.String()
	}
	if out := register(""); strings.Contains(out, "beside those storage holds") {
		t.Errorf("the first account warns:\n%s", out)
	}
	if out := register("op@a.test"); !strings.Contains(out, "beside those storage holds") || !strings.Contains(out, `stored="[(no email)]"`) {
		t.Errorf("a second account does not name the stored one:\n%s", out)
	}
}

// TestLostReply: a request reaches the CA and its reply is lost (the
// connection closes), at each step of an issuance in turn. Retrying must
// not fail where the CA has acted already: it refuses to accept a
// challenge twice ("Cannot update challenge with status valid") and to
// finalize an order twice (orderNotReady). Each issuance succeeds, with
// one order, except where new-order's own reply was lost (an order left
// unused at the CA, which costs nothing but a line in its logs).
func TestLostReply(t *testing.T) {
	e := newEnv(t, testca.Options{})
	proxy, newIssuer := e.throughProxy(t)
	iss := newIssuer()
	for _, step := range []string{"new-account", "new-order", "authz", "challenge", "finalize", "order", "certificate"} {
		before := proxy.Count("new-order")
		proxy.LoseReply(step, 1)
		name := "lost-" + step + ".a.test"
		cert, _, err := tryIssue(t, iss, issuer.ECDSAP256, nil, name)
		if err != nil {
			t.Errorf("reply to %s lost: %v", step, err)
			continue
		}
		e.verify(t, cert, name)
		if n := proxy.Count("new-order") - before; n != 1 && step != "new-order" {
			t.Errorf("reply to %s lost: %d orders, want 1", step, n)
		}
	}
}

// TestSoleAccountAdopted: an account registered with an email (account
// register --email) is the one an issuer without Email orders with when
// storage holds no other at that CA, instead of a second account beside
// it; a deactivated sole account is not adopted, and once storage holds
// an account without contact, that one is used.
func TestSoleAccountAdopted(t *testing.T) {
	e := newEnv(t, testca.Options{})
	st := filestore.New(t.TempDir())
	issuerFor := func(email string) (*acmeca.Issuer, *testsvc.Buffer) {
		iss := e.issuer(acmeca.HTTP01)
		iss.Storage, iss.Email = st, email
		logs := &testsvc.Buffer{}
		iss.Logger = slog.New(slog.NewTextHandler(logs, nil))
		return iss, logs
	}
	account := func(email string) (string, string) {
		iss, logs := issuerFor(email)
		acct, err := iss.Account(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return acct.Location, logs.String()
	}
	ops, _ := account("ops@a.test")
	// A key without a record is what a registration the CA refused (it
	// requires EAB) leaves: it does not stop the adoption.
	orphan, err := storage.AccountPrivateKey(storage.IssuerID(e.ca.DirectoryURL()), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(t.Context(), orphan, []byte("-----BEGIN PRIVATE KEY-----\n")); err != nil {
		t.Fatal(err)
	}
	got, logs := account("")
	if got != ops || !strings.Contains(logs, "ordering with the only ACME account storage holds at this CA") || !strings.Contains(logs, "email=ops@a.test") {
		t.Fatalf("issuer without email ordered with %s, want the stored %s; logs:\n%s", got, ops, logs)
	}
	iss, _ := issuerFor("")
	issue(t, iss, issuer.ECDSAP256, "sole.a.test")
	defRecord, err := storage.AccountKey(iss.ID(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Load(t.Context(), defRecord); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ordering with the sole account stored an account without contact (%s: %v)", defRecord, err)
	}
	if err := st.Delete(t.Context(), orphan); err != nil {
		t.Fatal(err)
	}

	deact, _ := issuerFor("ops@a.test")
	if err := deact.Deactivate(t.Context()); err != nil {
		t.Fatal(err)
	}
	own, logs := account("")
	if own == ops || strings.Contains(logs, "ordering with the only") {
		t.Fatalf("a deactivated sole account was adopted (%s); logs:\n%s", own, logs)
	}
	if again, _ := account(""); again != own {
		t.Fatalf("the account without contact changed: %s then %s", own, again)
	}
}

// TestSoleAccountBesideDeactivated: a deactivated account beside the one
// an issuer without Email orders with does not count: that one is still
// adopted (a CLI trial's deactivated second account made the next order
// without an email register a third account, which renewals then used).
func TestSoleAccountBesideDeactivated(t *testing.T) {
	e := newEnv(t, testca.Options{})
	st := filestore.New(t.TempDir())
	issuerFor := func(email string) *acmeca.Issuer {
		iss := e.issuer(acmeca.HTTP01)
		iss.Storage, iss.Email = st, email
		return iss
	}
	ops, err := issuerFor("ops@a.test").Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second := issuerFor("second@a.test")
	if _, err := second.Account(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := second.Deactivate(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := issuerFor("").Account(t.Context())
	if err != nil || got.Location != ops.Location {
		t.Errorf("an issuer without email ordered with %s (%v), want ops@a.test's %s beside the deactivated one", got.Location, err, ops.Location)
	}
}

// TestRevokeFindsOrderingAccount: a certificate another stored account
// ordered is revoked with that account when the issuer's own is refused
// (cert revoke --cert without the --email it was issued with); one that
// no stored account ordered fails, saying to sign with its key.
func TestRevokeFindsOrderingAccount(t *testing.T) {
	e := newEnv(t, testca.Options{})
	orderer := e.issuer(acmeca.HTTP01) // ops@a.test
	cert, _ := issue(t, orderer, issuer.ECDSAP256, "rv.a.test")
	leaf := cert.Leaf
	other := e.issuer(acmeca.HTTP01)
	other.Email = "other@a.test"
	logs := &testsvc.Buffer{}
	other.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if err := other.Revoke(t.Context(), leaf, nil, 4); err != nil {
		t.Fatalf("revoking with another stored account: %v", err)
	}
	if cs := e.ca.CertStatus(t, leaf.SerialNumber); cs.Status != "Revoked" {
		t.Fatalf("certificate status %q after Revoke", cs.Status)
	}
	if !strings.Contains(logs.String(), "revoked with the account that ordered the certificate") {
		t.Errorf("no log names the account that revoked:\n%s", logs)
	}

	stranger := e.issuer(acmeca.HTTP01)
	stranger.Storage = filestore.New(t.TempDir())
	cert2, _ := issue(t, stranger, issuer.ECDSAP256, "rv2.a.test")
	leaf2 := cert2.Leaf
	err := other.Revoke(t.Context(), leaf2, nil, 0)
	if err == nil || !strings.Contains(err.Error(), "revoke with the certificate's private key instead") {
		t.Fatalf("revoking a certificate no stored account ordered: %v", err)
	}
	if cs := e.ca.CertStatus(t, leaf2.SerialNumber); cs.Status != "Valid" {
		t.Fatalf("certificate status %q after a refused Revoke", cs.Status)
	}
}
