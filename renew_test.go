package certkeeper_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewalUnderLoad: with 60-second certificates, continuous handshakes
// (until every phase below is met, at most three minutes) see no failure and
// no expired certificate while the Manager renews in the background — through a CA outage (renewals
// fail, are retried, and succeed once it is back) and a CA that lost all
// its state (the account is registered again and replaces dropped).
func TestRenewalUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("three minutes of renewals; skipped with -short")
	}
	t.Parallel()
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"default": {Description: "60 seconds", ValidityPeriod: 60 * time.Second},
	}})
	proxy := testca.NewFaultProxy(t, ca)
	var events sync.Map // kind → count
	var failuresLogged atomic.Int32
	count := func(k certkeeper.EventKind) int32 {
		if v, ok := events.Load(k); ok {
			return v.(*atomic.Int32).Load()
		}
		return 0
	}
	m := &certkeeper.Manager{
		Storage: filestore.New(t.TempDir()),
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL:   proxy.DirectoryURL(),
			HTTPClient:     ca.HTTPClient(),
			Profile:        "default",
			ChallengeOrder: []string{acmeca.TLSALPN01},
		}},
		OnEvent: func(e certkeeper.Event) {
			v, _ := events.LoadOrStore(e.Kind, new(atomic.Int32))
			v.(*atomic.Int32).Add(1)
			if e.Kind == certkeeper.RenewalFailed && !e.Retry.IsZero() {
				failuresLogged.Add(1)
			}
		},
	}
	addr := serveOnPort(t, m, ca.TLSPort())
	if err := m.Cert(t.Context(), "r.test"); err != nil {
		t.Fatal(err)
	}
	roots := ca.IssuingRootPool(t)

	var handshakes, failures int
	serials := map[string]bool{}
	deadline := time.Now().Add(3 * time.Minute)
	start := time.Now()
	// The phases follow the Manager's own events, so the CA's outage
	// always meets a renewal, however the due times fall:
	// 0: after the first renewal, the CA becomes unreachable;
	// 1: once a renewal has failed (and been reported with its retry
	//    time), the CA comes back;
	// 2: after the next renewal, the CA restarts with no state at all;
	// 3: a renewal after that must re-register the account.
	phase := 0
	var renewedAt int32
	for time.Now().Before(deadline) {
		el := time.Since(start)
		switch {
		case phase == 0 && count(certkeeper.Renewed) >= 1:
			proxy.Down()
			phase++
		case phase == 1 && failuresLogged.Load() >= 1:
			proxy.Up(t)
			renewedAt = count(certkeeper.Renewed)
			phase++
		case phase == 2 && count(certkeeper.Renewed) > renewedAt:
			if ca.Replacements() < 1 {
				t.Errorf("no renewal order carried replaces before the CA restart")
			}
			ca.Restart(t) // a new CA on the same address: every account is gone
			roots = nil
			renewedAt = count(certkeeper.Renewed)
			phase++
		case phase == 3 && count(certkeeper.Renewed) > renewedAt:
			// Every phase has been met: the rest of the three minutes
			// would only repeat phase 3.
			phase++
		}
		if phase == 4 {
			break
		}
		if roots == nil {
			roots = ca.IssuingRootPool(t)
		}
		leaf, err := handshakeAddr(addr, "r.test", roots)
		handshakes++
		switch {
		case err != nil && phase == 3 && isUnknownAuthority(err):
			// The restarted CA has new roots; the certificate from the old
			// one is still valid, just not under the new pool.
			handshakes--
		case err != nil:
			failures++
			t.Logf("handshake at %s: %v", el.Round(time.Second), err)
		case time.Now().After(leaf.NotAfter):
			failures++
			t.Errorf("served an expired certificate at %s", el.Round(time.Second))
		default:
			serials[leaf.SerialNumber.String()] = true
		}
		time.Sleep(250 * time.Millisecond)
	}
	if failures > 0 {
		t.Errorf("%d of %d handshakes failed, want 0", failures, handshakes)
	}
	if len(serials) < 2 {
		t.Errorf("saw %d distinct serials in %s of 60 s certificates, want ≥ 2", len(serials), time.Since(start).Round(time.Second))
	}
	if phase < 4 {
		t.Errorf("reached phase %d with %d renewals: want the outage, the recovery, the CA restart and a renewal after it", phase, count(certkeeper.Renewed))
	}
	if ca.Accounts() != 1 {
		t.Errorf("the restarted CA saw %d new accounts, want 1 (registered again)", ca.Accounts())
	}
	t.Logf("%d handshakes, %d serials, every phase met after %s", handshakes, len(serials), time.Since(start).Round(time.Second))
}

func isUnknownAuthority(err error) bool {
	var ua x509.UnknownAuthorityError
	return errors.As(err, &ua)
}

// TestFallbackChain: the first CA is down, the second issues, and the
// event names the issuer used.
func TestFallbackChain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String() + "/dir"
	ln.Close()
	st := filestore.New(t.TempDir())
	var got certkeeper.Event
	m := &certkeeper.Manager{
		Storage: st,
		Issuers: []issuer.Issuer{
			&acmeca.Issuer{DirectoryURL: dead},
			&localca.CA{Storage: st},
		},
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Obtained {
				got = e
			}
		},
	}
	defer m.Close()
	if err := m.Cert(t.Context(), "f.test"); err != nil {
		t.Fatalf("Cert with the first CA down: %v", err)
	}
	if got.Issuer != "local" {
		t.Errorf("Obtained event names issuer %q, want local", got.Issuer)
	}
}

// TestUnusedNotRenewed: an on-demand name that no handshake asks for
// within UnusedAfter is not renewed.
func TestUnusedNotRenewed(t *testing.T) {
	t.Parallel()
	st := filestore.New(t.TempDir())
	var renewed, obtained atomic.Int32
	m := &certkeeper.Manager{
		Policy:      policy.Allowlist("u.test", "used.test"),
		Storage:     st,
		Issuers:     []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 8 * time.Second}},
		UnusedAfter: 2 * time.Second,
		OnEvent: func(e certkeeper.Event) {
			switch {
			case e.Kind == certkeeper.Renewed && e.Names[0] == "u.test":
				renewed.Add(1)
			case e.Kind == certkeeper.Obtained:
				obtained.Add(1)
			}
		},
	}
	defer m.Close()
	for _, n := range []string{"u.test", "used.test"} {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: n}); err != nil {
			t.Fatal(err)
		}
	}
	// used.test keeps being asked for; u.test is never seen again.
	usedSerials := map[string]bool{}
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "used.test"})
		if err != nil {
			t.Fatal(err)
		}
		usedSerials[c.Leaf.SerialNumber.String()] = true
	}
	if renewed.Load() != 0 {
		t.Errorf("u.test, unused for longer than UnusedAfter, was renewed %d times", renewed.Load())
	}
	// Let go, it is not taken up again by the expiry sweep, which makes
	// the records other nodes store ones this node renews.
	key := "certificates/local/u.test.json"
	if _, ok := certkeeper.Scheduled(m, key); ok {
		t.Errorf("%s, unused, still scheduled for renewal", key)
	}
	certkeeper.SweepExpired(m, t.Context())
	if _, ok := certkeeper.Scheduled(m, key); ok {
		t.Errorf("%s, unused, scheduled for renewal again by the sweep", key)
	}
	// Once its record is gone (another node's sweep), it is not
	// remembered either.
	if n := certkeeper.LetGo(m); n != 1 {
		t.Errorf("%d certificates let go remembered, want 1 (u.test)", n)
	}
	if err := st.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	certkeeper.SweepExpired(m, t.Context())
	if n := certkeeper.LetGo(m); n != 0 {
		t.Errorf("%d certificates let go remembered after their records were deleted, want 0", n)
	}
	if len(usedSerials) < 2 {
		t.Errorf("used.test, asked for continuously, was not renewed (%d serial)", len(usedSerials))
	}
}

// serveOnPort runs m's TLSConfig on 127.0.0.1:port until the test ends.
func serveOnPort(t *testing.T, m *certkeeper.Manager, port int) string {
	t.Helper()
	t.Cleanup(func() { m.Close() }) // after the listener's: cleanups run last first
	return serveTLS(t, m.TLSConfig(), port)
}

// serveTLS completes TLS handshakes with cfg on 127.0.0.1:port (0: any) until the
// test ends.
func serveTLS(t *testing.T, cfg *tls.Config, port int) string {
	t.Helper()
	ln, err := tls.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// switchPolicy allows its names until refuse is set.
type switchPolicy struct {
	names  map[string]bool
	refuse atomic.Bool
}

func (p *switchPolicy) Decide(_ context.Context, name string) error {
	if p.refuse.Load() || !p.names[name] {
		return fmt.Errorf("%w: %s is not allowed now", policy.ErrDenied, name)
	}
	return nil
}

// TestRefusedNotRenewed: an on-demand certificate whose name the policy
// refuses when it is due is not renewed (trial 24: nodes renewed names
// their own allowlist refused, although troubleshooting.md says they are
// not); one the Manager was asked for through Cert is renewed whatever
// the policy says.
func TestRefusedNotRenewed(t *testing.T) {
	t.Parallel()
	st := filestore.New(t.TempDir())
	pol := &switchPolicy{names: map[string]bool{"gone.test": true}}
	var renewed sync.Map
	m := &certkeeper.Manager{
		Policy:  pol,
		Storage: st,
		Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 8 * time.Second}},
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Renewed {
				renewed.Store(e.Names[0], true)
			}
		},
	}
	defer m.Close()
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "gone.test"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Cert(t.Context(), "kept.test"); err != nil {
		t.Fatal(err)
	}
	pol.refuse.Store(true)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := renewed.Load("kept.test"); ok {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, ok := renewed.Load("kept.test"); !ok {
		t.Fatal("kept.test (through Cert) was not renewed within 15 s")
	}
	time.Sleep(2 * time.Second) // gone.test was due as early as kept.test
	if _, ok := renewed.Load("gone.test"); ok {
		t.Error("gone.test, refused by the policy when due, was renewed")
	}
	// Left to expire, it is marked so for the metrics, which do not count
	// it among the certificates kept renewed (a soak trial's name taken
	// out of the allowlist fired the expiry alerts as it ran out).
	for _, c := range m.Stats().Certificates {
		if want := c.Names[0] == "gone.test"; c.Refused != want {
			t.Errorf("Stats: %s Refused = %v, want %v", c.Names[0], c.Refused, want)
		}
	}
	x := metrics.New()
	if err := x.Register(m); err != nil {
		t.Fatal(err)
	}
	families, err := x.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "certkeeper_certificates_managed" {
			if n := f.GetMetric()[0].GetGauge().GetValue(); n != 1 {
				t.Errorf("certkeeper_certificates_managed = %v, want 1 (kept.test; gone.test is left to expire)", n)
			}
		}
	}
}

// TestFilesCertificateNotRenewed: a certificate cert issue stored beside
// its files (IssueRequest.Files) is left to cert renew by a Manager that
// shares the storage, while one the Manager was asked for by name, due at
// the same time, is renewed.
func TestFilesCertificateNotRenewed(t *testing.T) {
	t.Parallel()
	st := filestore.New(t.TempDir())
	ca := &localca.CA{Storage: st, Lifetime: 6 * time.Second}
	chain := &issuer.Chain{Issuers: []issuer.Issuer{ca}}
	for _, req := range []certkeeper.IssueRequest{
		{Names: []string{"files.test"}, Issuers: chain, Files: true},
		{Names: []string{"named.test"}, Issuers: chain},
	} {
		if _, err := certkeeper.Issue(t.Context(), st, req); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	renewed := map[string]int{}
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("files.test", "named.test"),
		Storage: st,
		Issuers: []issuer.Issuer{ca},
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Renewed {
				mu.Lock()
				renewed[e.Names[0]]++
				mu.Unlock()
			}
		},
	}
	defer m.Close()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	// Both are due at two thirds of their 6 s; named.test's renewal shows
	// that the Manager got that far.
	if !waitFor(15*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return renewed["named.test"] > 0 }) {
		t.Fatal("named.test, due, was not renewed within 15 s")
	}
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	if renewed["files.test"] != 0 {
		t.Errorf("the Manager renewed files.test, a certificate of cert issue's, %d times", renewed["files.test"])
	}
}

// TestMissingRecordRestored: a certificate held in memory whose record
// leaves storage (status.Remove, a Redis restarted without persistence)
// is stored again at its next renewal check and renewed, not served past
// its expiry with no renewal; one whose name the policy no longer allows
// is let go.
func TestMissingRecordRestored(t *testing.T) {
	t.Parallel()
	st := filestore.New(t.TempDir())
	var logs testsvc.Buffer
	allowed := atomic.Bool{}
	allowed.Store(true)
	m := &certkeeper.Manager{
		Policy: policy.Func(func(ctx context.Context, name string) error {
			if name == "gone.test" || allowed.Load() {
				return nil
			}
			return policy.ErrDenied
		}),
		Storage: st,
		Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 8 * time.Second}},
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	}
	defer m.Close()
	first := map[string]*tls.Certificate{}
	for _, n := range []string{"gone.test", "refused.test"} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: n})
		if err != nil {
			t.Fatal(err)
		}
		first[n] = c
		if removed, err := status.Remove(t.Context(), st, n); err != nil || len(removed) != 1 {
			t.Fatalf("status.Remove(%s) = %v, %v", n, removed, err)
		}
	}
	allowed.Store(false)
	renewed := false
	for end := first["gone.test"].Leaf.NotAfter; !renewed && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "gone.test"})
		if err != nil {
			t.Fatal(err)
		}
		renewed = !c.Leaf.Equal(first["gone.test"].Leaf)
	}
	if !renewed {
		t.Fatalf("gone.test, removed from storage, was not renewed before it expired:\n%s", logs.String())
	}
	// refused.test's renewal check may come after gone.test's.
	const letGo = "the policy does not allow its name now: not renewed"
	for end := first["refused.test"].Leaf.NotAfter; !strings.Contains(logs.String(), letGo) && time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
	}
	recs, err := status.Read(t.Context(), st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range recs {
		listed = append(listed, r.Names[0])
	}
	if !slices.Equal(listed, []string{"gone.test"}) {
		t.Errorf("status lists %v, want gone.test alone (stored again, renewed; refused.test let go)", listed)
	}
	for _, want := range []string{"a certificate held in memory was missing from storage", letGo} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}
