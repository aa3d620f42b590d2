package certkeeper_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"golang.org/x/time/rate"
)

func dialName(addr, name string) error {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	return conn.Close()
}

// TestClientLimit: one client address cannot start more issuances than
// its budget; names already held are still served.
func TestClientLimit(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("*.c.test"))
	m.ClientLimit = &policy.IPLimiter{Burst: 2, Rate: rate.Every(time.Hour)}
	addr := serveOn(t, m)
	for _, n := range []string{"a.c.test", "b.c.test"} {
		if err := dialName(addr, n); err != nil {
			t.Fatalf("new name %s within the budget: %v", n, err)
		}
	}
	if err := dialName(addr, "x.c.test"); err == nil {
		t.Error("a third new name from the same client succeeded, want it refused")
	}
	if err := dialName(addr, "a.c.test"); err != nil {
		t.Errorf("a name already held was refused: %v", err)
	}
	// What CertificateFor says of it: a limit, not the policy's refusal
	// (code that takes ErrDenied for good must not), retried when the
	// client's budget has refilled, an hour here (a library trial's said
	// 10 s, and was refused again then).
	client := netip.MustParseAddr("192.0.2.9")
	for _, n := range []string{"y.c.test", "z.c.test"} {
		if _, err := m.CertificateFor(t.Context(), n, client); err != nil {
			t.Fatal(err)
		}
	}
	_, err := m.CertificateFor(t.Context(), "w.c.test", client)
	var ue *certkeeper.UnavailableError
	switch {
	case !errors.Is(err, certkeeper.ErrClientLimit) || errors.Is(err, policy.ErrDenied) || !errors.As(err, &ue):
		t.Errorf("over the client's budget: %v; want an UnavailableError matching ErrClientLimit, not policy.ErrDenied", err)
	case time.Until(ue.RetryAfter) < 50*time.Minute || time.Until(ue.RetryAfter) > time.Hour:
		t.Errorf("over a budget that refills one an hour: RetryAfter in %s, want about an hour", time.Until(ue.RetryAfter).Round(time.Second))
	case ue.Reason() != "too many new names from this client":
		t.Errorf("Reason() = %q", ue.Reason())
	}
}

func TestMaxNames(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("*.m.test"))
	m.MaxNames = 2
	for _, n := range []string{"a.m.test", "b.m.test"} {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "c.m.test"}); !errors.Is(err, policy.ErrDenied) {
		t.Errorf("a name beyond MaxNames: err = %v, want ErrDenied", err)
	}
}

// TestFailureBackoffSurvivesRestart: a name the CA refused is not ordered
// again during its backoff, not even by a new Manager on the same storage.
// The CA rejects the name itself (rejectedIdentifier), so the backoff is
// an hour, not a minute; the failure is logged once, as a warning, and
// status says it waits for a handshake.
func TestFailureBackoffSurvivesRestart(t *testing.T) {
	ca := testca.Start(t, testca.Options{DomainBlocklist: []string{"blocked.test"}})
	st := filestore.New(t.TempDir())
	var logs testsvc.Buffer
	newManager := func() *certkeeper.Manager {
		m := &certkeeper.Manager{
			Policy:  policy.Allowlist("blocked.test"),
			Storage: st,
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: "default"}},
			Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := newManager()
	start := time.Now()
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "blocked.test"}); !errors.Is(err, issuer.ErrNameRejected) {
		t.Fatalf("a name the CA refuses: err = %v, want ErrNameRejected", err)
	}
	if out := logs.String(); strings.Count(out, "level=WARN msg=\"obtaining a certificate failed; tried again when a handshake asks for it\"") != 1 ||
		strings.Contains(out, "no issuer left to try") || strings.Contains(out, "level=ERROR") {
		t.Errorf("the failure is not logged once as a warning:\n%s", out)
	}
	certs, err := status.Read(t.Context(), st, time.Now())
	if err != nil || len(certs) != 1 || !certs[0].FirstIssue || !certs[0].NextRenewal.IsZero() ||
		certs[0].RetryAt.Before(start.Add(59*time.Minute)) {
		t.Errorf("status = %+v (%v), want one first issuance waiting about an hour for a handshake", certs, err)
	}
	orders := ca.Orders()
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "blocked.test"}); !errors.Is(err, certkeeper.ErrFailedRecently) || errors.Is(err, policy.ErrDenied) {
		t.Errorf("second attempt right after a failure: err = %v, want ErrFailedRecently (backoff), not the policy's ErrDenied", err)
	} else if !strings.Contains(err.Error(), "last failure at ") || !strings.Contains(err.Error(), "rejectedIdentifier") {
		t.Errorf("second attempt right after a failure: %q does not say why the first failed", err)
	}
	m.Close()
	m2 := newManager()
	if _, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "blocked.test"}); !errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Errorf("after a restart: err = %v, want ErrFailedRecently (backoff kept in storage)", err)
	}
	// The cause, read from storage with the other stored failures (the
	// start-up scan), is named too.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "blocked.test"})
		if strings.Contains(fmt.Sprint(err), "rejectedIdentifier") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after a restart: %v does not say why the last attempt failed", err)
			break
		}
	}
	if n := ca.Orders(); n != orders {
		t.Errorf("%d orders during the backoff, want 0", n-orders)
	}
}

// TestDuplicateLimit: a sixth new certificate for the same names within a
// week is refused before any order (the CA's duplicate limit), also after
// a restart.
func TestDuplicateLimit(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	st := filestore.New(t.TempDir())
	newManager := func() *certkeeper.Manager {
		m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: "default",
			ChallengeOrder: []string{acmeca.TLSALPN01}}}}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := newManager()
	serveOnPort(t, m, ca.TLSPort())
	key, _ := storage.CertificateKey(certkeeper.IssuerIDs(m)[0], "dup.test")
	for i := range 5 {
		if err := m.Cert(t.Context(), "dup.test"); err != nil {
			t.Fatalf("certificate %d: %v", i+1, err)
		}
		if err := st.Delete(t.Context(), key); err != nil { // as if lost, so Cert orders again
			t.Fatal(err)
		}
	}
	orders := ca.Orders()
	if err := m.Cert(t.Context(), "dup.test"); !errors.Is(err, policy.ErrDenied) {
		t.Errorf("sixth certificate in a week: err = %v, want ErrDenied", err)
	}
	m.Close()
	if err := newManager().Cert(t.Context(), "dup.test"); !errors.Is(err, policy.ErrDenied) {
		t.Errorf("after a restart: err = %v, want ErrDenied", err)
	}
	if n := ca.Orders(); n != orders {
		t.Errorf("%d orders beyond the duplicate limit, want 0", n-orders)
	}
}

// TestOrderBudgetLetsEncryptOnly: an ACME CA other than Let's Encrypt
// gets more new orders from one Manager than Let's Encrypt's 300 per 3
// hours (its limits are its own, answered with rateLimited); a trial's
// nodes stopped at 300 each against a CA without that limit.
func TestOrderBudgetLetsEncryptOnly(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	m := &certkeeper.Manager{Policy: policy.Allowlist("*.many.test"), Storage: filestore.New(t.TempDir()),
		Logger: slog.New(slog.DiscardHandler),
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(),
			ChallengeOrder: []string{acmeca.TLSALPN01}}}}
	defer m.Close()
	serveTLS(t, m.TLSConfig(), ca.TLSPort())
	const n = 310
	names := make(chan string, n)
	for i := range n {
		names <- fmt.Sprintf("n%d.many.test", i)
	}
	close(names)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 8 {
		wg.Go(func() {
			for name := range names {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				_, err := m.CertificateFor(ctx, name, netip.Addr{})
				cancel()
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", name, err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d of %d names failed through a CA without Let's Encrypt's order limit, first: %v", len(errs), n, errs[0])
	}
}
