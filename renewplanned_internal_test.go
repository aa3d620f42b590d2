package certkeeper

import (
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewPlannedForReplacedCertificate: a node that drew a renewal time
// for a certificate it does not hold in memory (it restarted since the
// certificate was obtained, and no handshake has asked for it) does not
// apply that time to the certificate another node stored as its renewal.
// It renewed it again, at the time drawn for the old one: a certificate
// renewed twice within a minute across a three-node cluster.
func TestRenewPlannedForReplacedCertificate(t *testing.T) {
	ctx := t.Context()
	st := filestore.New(t.TempDir())
	newManager := func(st storage.Storage) *Manager {
		m := &Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, Logger: slog.New(slog.DiscardHandler)}
		t.Cleanup(func() { m.Close() })
		return m
	}
	if err := newManager(st).Cert(ctx, "p.cluster.test"); err != nil {
		t.Fatal(err)
	}
	stored := func() (string, *big.Int) {
		t.Helper()
		keys, err := st.List(ctx, storage.CertificatePrefix(""))
		if err != nil || len(keys) != 1 {
			t.Fatalf("List = %v, %v; want one certificate", keys, err)
		}
		data, err := st.Load(ctx, keys[0])
		if err != nil {
			t.Fatal(err)
		}
		_, leaf, err := storage.UnmarshalCertificateLeaf(keys[0], data)
		if err != nil {
			t.Fatal(err)
		}
		return keys[0], leaf.SerialNumber
	}
	key, oldSerial := stored()

	b := newManager(st)
	if err := b.init(); err != nil {
		t.Fatal(err)
	}
	<-b.renew.scanned
	// b drew a time for the old certificate, now due.
	b.renew.mu.Lock()
	b.renew.planned[key] = plannedRenewal{serial: oldSerial, at: time.Now().Add(-time.Second)}
	b.renew.mu.Unlock()

	// Another node renews it first: a new certificate under the same key.
	other := filestore.New(t.TempDir())
	if err := newManager(other).Cert(ctx, "p.cluster.test"); err != nil {
		t.Fatal(err)
	}
	data, err := other.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	_, renewed := stored()

	b.renewStored(key)
	if _, now := stored(); now.Cmp(renewed) != 0 {
		t.Errorf("stored serial %s after the check, want %s: the certificate another node had just renewed was renewed again", now, renewed)
	}
}

// TestRenewalRetryLogUnheld: a renewal that fails for a certificate this
// node does not hold in memory (storage unreachable when it was due) is
// logged with its storage key, and without empty names or a not_after of
// year 1; it was logged as names=[] not_after=0001-01-01T00:00:00.000Z.
func TestRenewalRetryLogUnheld(t *testing.T) {
	m, logs := warnLogged(t)
	<-m.renew.scanned
	const key = "certificates/ca/u.cluster.test.json"
	m.retryLater(key, nil, errors.New("storage unreachable"))
	got := logs.String()
	if !strings.Contains(got, "renewal failed; will retry") || !strings.Contains(got, "key="+key) {
		t.Errorf("log lacks the renewal failure with its key:\n%s", got)
	}
	if strings.Contains(got, "0001-01-01") || strings.Contains(got, "names=[]") {
		t.Errorf("log shows a zero date or no names:\n%s", got)
	}
}

// TestRenewalBackoffAfterRestart: a renewal that was failing goes on with
// its attempt count after a restart, so its backoff does not start again
// from a minute; the restart itself tries it again (an operator's way to
// retry now). The log said attempt=1 after every restart (trial 26).
func TestRenewalBackoffAfterRestart(t *testing.T) {
	ctx := t.Context()
	st := filestore.New(t.TempDir())
	logs := &testsvc.Buffer{}
	newManager := func() *Manager {
		m := &Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
		t.Cleanup(func() { m.Close() })
		return m
	}
	first := newManager()
	if err := first.Cert(ctx, "b.restart.test"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v; want one certificate", keys, err)
	}
	key := keys[0]
	if _, err := status.UpdateFailures(ctx, st, func(all map[string]status.Failure) bool {
		all[key] = status.Failure{Names: []string{"b.restart.test"}, Error: "the CA said no", At: time.Now(),
			RetryAt: time.Now().Add(24 * time.Hour), Attempt: 3}
		return true
	}, nil); err != nil {
		t.Fatal(err)
	}
	m := newManager()
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	<-m.renew.scanned
	m.renew.mu.Lock()
	attempts := m.renew.attempts[key]
	m.renew.mu.Unlock()
	if attempts != 3 {
		t.Errorf("attempts = %d after a restart, want the stored 3", attempts)
	}
	m.retryLater(key, nil, errors.New("the CA said no again"))
	if !strings.Contains(logs.String(), "attempt=4") {
		t.Errorf("the next failure's log lacks attempt=4:\n%s", logs.String())
	}
	// The fourth attempt waits as long as a fourth does (100 minutes at
	// least), not a first's minute.
	if at, ok := m.scheduler().When(key); !ok || at.Before(time.Now().Add(90*time.Minute)) {
		t.Errorf("next attempt %v (%v), want the fourth attempt's backoff", at, ok)
	}
}

// TestSharedWindow: a window another node stored is used until its next
// check, and this node looks again 20 to 40 s after it; a past next
// check, an invalid window, or a next check beyond the longest interval
// between two (a node whose clock is ahead) makes this node ask.
func TestSharedWindow(t *testing.T) {
	m := &Manager{}
	now := time.Now()
	win := func(next time.Time) *storage.Certificate {
		return &storage.Certificate{RenewalWindow: &storage.Window{Start: now.Add(24 * time.Hour), End: now.Add(48 * time.Hour),
			NextCheck: next, ExplanationURL: "https://ca.test/why"}}
	}
	next := now.Add(6 * time.Hour)
	w, expl, at, ok := m.sharedWindow(win(next), now)
	if !ok || !w.Start.Equal(now.Add(24*time.Hour)) || expl != "https://ca.test/why" || at.Before(next.Add(sharedDelay)) || !at.Before(next.Add(2*sharedDelay)) {
		t.Errorf("a window checked until %v: %v %q next %v, %v; want it, next 20 to 40 s after", next, w, expl, at, ok)
	}
	bad := win(next)
	bad.RenewalWindow.End = bad.RenewalWindow.Start
	for what, rec := range map[string]*storage.Certificate{
		"no window": {}, "a past next check": win(now.Add(-time.Second)), "an invalid window": bad,
		"a next check 13 hours ahead": win(now.Add(13 * time.Hour)),
	} {
		if _, _, _, ok := m.sharedWindow(rec, now); ok {
			t.Errorf("%s: used, want this node to ask", what)
		}
	}
}

// TestStoredDue: at start, a stored certificate is looked at when its
// due range begins, from the CA's window kept in the record rather than
// the lifetime rule's (a trial's restart logged a certificate as late
// that the window put hours on); once the range has begun, at the time
// the serial draws, as renewStored and status find it.
func TestStoredDue(t *testing.T) {
	ctx := t.Context()
	st := filestore.New(t.TempDir())
	m := &Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, Logger: slog.New(slog.DiscardHandler)}
	t.Cleanup(func() { m.Close() })
	if err := m.Cert(ctx, "due.test"); err != nil {
		t.Fatal(err)
	}
	key, err := storage.CertificateKey("local", "due.test")
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	_, leaf, err := storage.UnmarshalCertificateLeaf(key, data)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// Two thirds of the lifetime have passed: late by the lifetime rule.
	d := storage.CertificateFields{Names: []string{"due.test"}, NotBefore: now.Add(-80 * 24 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)}
	d.RenewalWindow = &storage.Window{Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)}
	if at := m.storedDue(key, data, d, now); !at.Equal(now.Add(time.Hour)) {
		t.Errorf("window an hour on: looked at %v, want its start %v", at, now.Add(time.Hour))
	}
	d.RenewalWindow = &storage.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour)}
	c := renewal.Cert{NotBefore: d.NotBefore, NotAfter: d.NotAfter, Serial: leaf.SerialNumber, ARI: renewal.Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour)}}
	if at, want := m.storedDue(key, data, d, now), renewal.Due(c, now, nil); !at.Equal(want) {
		t.Errorf("window begun: looked at %v, want the serial's time %v", at, want)
	}
}
