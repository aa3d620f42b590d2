package certkeeper_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCloseAbandonsIssuance: Close during an on-demand issuance (the CA
// hangs at finalize) ends it, fails the handshake that waits for it, and
// releases its issue lock before returning, so the next process to want
// the name (a restarted node) takes the lock at once instead of waiting
// out the lease; before, the issuance ran on past Close and the process
// exited holding the lock (trial 11). Real Pebble, behind the fault proxy.
func TestCloseAbandonsIssuance(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, IssueTimeout: time.Minute,
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: proxy.DirectoryURL(), HTTPClient: ca.HTTPClient(),
			ChallengeOrder: []string{acmeca.TLSALPN01}}}}
	serveOnPort(t, m, ca.TLSPort()) // answers tls-alpn-01
	proxy.PauseAt("finalize")
	defer proxy.Resume()
	done := make(chan error, 1)
	go func() {
		_, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
		done <- err
	}()
	if !waitFor(30*time.Second, func() bool { return proxy.Count("finalize") > 0 }) {
		t.Fatal("the issuance never reached finalize")
	}
	start := time.Now()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Close took %s with an issuance in flight", took)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("the handshake waiting for the abandoned issuance got a certificate")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handshake still waits after Close")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	unlock, err := st.Lock(ctx, storage.IssueLock("a.test"))
	if err != nil {
		t.Fatalf("the issue lock of a.test is still held after Close: %v", err)
	}
	unlock()
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"}); !errors.Is(err, certkeeper.ErrClosed) {
		t.Errorf("a new name after Close: %v, want ErrClosed", err)
	}
	// Cert after Close orders nothing either (it did: trial 13).
	orders := ca.Orders()
	proxy.Resume()
	if err := m.Cert(t.Context(), "a.test"); !errors.Is(err, certkeeper.ErrClosed) {
		t.Errorf("Cert after Close: %v, want ErrClosed", err)
	}
	if ca.Orders() != orders {
		t.Errorf("Cert after Close placed %d orders", ca.Orders()-orders)
	}
}

// TestIssueLockWaitLogged: a handshake that waits for an issue lock
// another process holds says so in the log, and how long it waited, where
// before a request hung for up to a lease (30 s) with nothing logged
// (trial 11).
func TestIssueLockWaitLogged(t *testing.T) {
	st := filestore.New(t.TempDir())
	var logs testsvc.Buffer
	m := localManager(t, st, policy.Allowlist("a.test"))
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	unlock, err := st.Lock(t.Context(), storage.IssueLock("a.test")) // another node, issuing
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
		done <- err
	}()
	if !waitFor(10*time.Second, func() bool { return strings.Contains(logs.String(), "waiting for the issue lock") }) {
		t.Fatalf("the wait for the lock is not logged:\n%s", logs.String())
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "issue lock taken after waiting") || !strings.Contains(logs.String(), "waited=") {
		t.Errorf("how long it waited is not logged:\n%s", logs.String())
	}
}

// TestUnavailableReason: the 503 body of the certificate server names the
// usual cause in a few words, without the log's detail (trial 11: every
// failure read "no certificate yet; retry later").
func TestUnavailableReason(t *testing.T) {
	for err, want := range map[error]string{
		fmt.Errorf("x: %w", certkeeper.ErrFailedRecently):                       "its last issuance failed, and the next attempt waits",
		fmt.Errorf("%w (%w)", certkeeper.ErrClosed, context.Canceled):           "the server is stopping",
		&issuer.Error{Err: issuer.ErrRateLimited}:                               "the CA rate-limited the order",
		fmt.Errorf("%w at https://ca.test/dir", acmeca.ErrUnreachable):          "the CA cannot be reached",
		fmt.Errorf("waiting: %w", context.DeadlineExceeded):                     "its issuance is still in progress",
		errors.New("urn:ietf:params:acme:error:unauthorized: 10.0.0.5 said no"): "its issuance failed",
	} {
		ue := &certkeeper.UnavailableError{Name: "a.test", Err: err}
		if got := ue.Reason(); got != want {
			t.Errorf("Reason of %v = %q, want %q", err, got, want)
		}
	}
}

// TestHandshakeWait: with HandshakeWait, a handshake for a name whose
// issuance stalls (the CA hangs at finalize) fails after that long, saying
// the issuance goes on, where before it waited for the issue timeout (a
// trial's proxy client waited three minutes in silence); the log says the
// issuance still runs; once the CA answers, the same order completes and
// the next handshake gets its certificate. Real Pebble, behind the fault
// proxy.
func TestHandshakeWait(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	var logs testsvc.Buffer
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: filestore.New(t.TempDir()), IssueTimeout: 4 * time.Second,
		HandshakeWait: time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: proxy.DirectoryURL(), HTTPClient: ca.HTTPClient(),
			ChallengeOrder: []string{acmeca.TLSALPN01}}}}
	defer m.Close()
	serveOnPort(t, m, ca.TLSPort())
	proxy.PauseAt("finalize")
	defer proxy.Resume()
	start := time.Now()
	_, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "still in progress after 1s") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handshake during a stalled issuance: %v, want it still in progress after 1s", err)
	}
	if took > 3*time.Second {
		t.Errorf("the handshake waited %s, want about HandshakeWait (1s)", took)
	}
	// At HandshakeWait the waiting handshakes fail: a warning, as clients
	// see it (an ops trial's hung CA showed an Info line alone).
	if !waitFor(5*time.Second, func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="handshakes fail while a certificate is still being obtained`)
	}) {
		t.Errorf("no warning says the handshakes fail while the issuance still runs:\n%s", logs.String())
	}
	if proxy.Count("finalize") == 0 {
		t.Fatal("the issuance never reached finalize")
	}
	proxy.Resume()
	var c *tls.Certificate
	waitFor(10*time.Second, func() bool {
		c, err = m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
		return err == nil
	})
	if err != nil || c == nil {
		t.Fatalf("after the CA answered: %v", err)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("%d orders, want the one that stalled, completed", n)
	}
}
