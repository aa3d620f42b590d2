package certkeeper_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestARIWindowHeard: a CA that wants a certificate replaced long before
// the lifetime rule's due time (its ARI window moved to the past, as RFC
// 9773 lets a CA do ahead of a revocation) gets it replaced at the next
// check of the window: by the Manager that obtained it, and by one that
// found it in storage at start, without a handshake; the operator is told,
// with the CA's explanation URL. Checks of a window that is not open yet
// renew nothing, and keep it in the record, where status plans from it as
// the Manager does.
func TestARIWindowHeard(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	var renewed atomic.Int32
	logs := &testsvc.Buffer{}
	newManager := func() *certkeeper.Manager {
		m := &certkeeper.Manager{
			Storage: filestore.New(dir),
			Logger:  slog.New(slog.NewTextHandler(logs, nil)),
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(),
				ChallengeOrder: []string{acmeca.TLSALPN01}}},
			OnEvent: func(e certkeeper.Event) {
				if e.Kind == certkeeper.Renewed {
					renewed.Add(1)
				}
			},
		}
		certkeeper.SetARICheckEvery(m, 100*time.Millisecond)
		return m
	}
	// One listener, on the port Pebble validates tls-alpn-01 on, serves
	// the Manager of the moment.
	var current atomic.Pointer[certkeeper.Manager]
	addr := serveTLS(t, &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return current.Load().TLSConfig(), nil
	}}, ca.TLSPort())
	m := newManager()
	defer m.Close()
	current.Store(m)
	if err := m.Cert(t.Context(), "ari.test"); err != nil {
		t.Fatal(err)
	}
	roots := ca.IssuingRootPool(t)
	first, err := handshakeAddr(addr, "ari.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	// Ten checks of Pebble's own window (two thirds of 90 days on).
	time.Sleep(time.Second)
	if n := renewed.Load(); n != 0 {
		t.Fatalf("%d renewals of a certificate whose window opens in two months", n)
	}
	// The window is kept in the record, and status plans the renewal from
	// it as the Manager does.
	certs, rec := onlyStored(t, filestore.New(dir), time.Now())
	if rec.RenewalWindow == nil {
		t.Fatalf("the record keeps no renewal window after ten checks")
	}
	want := renewal.Due(renewal.Cert{NotBefore: first.NotBefore, NotAfter: first.NotAfter, Serial: first.SerialNumber,
		ARI: renewal.Window{Start: rec.RenewalWindow.Start, End: rec.RenewalWindow.End}}, time.Now(), nil)
	if !certs[0].NextRenewal.Equal(want) {
		t.Errorf("status shows the next renewal at %v, want %v (in the CA's window %v to %v)", certs[0].NextRenewal, want, rec.RenewalWindow.Start, rec.RenewalWindow.End)
	}

	now := time.Now()
	ca.SetRenewalWindow(t, first, now.Add(-2*time.Hour), now.Add(-time.Hour), "https://ca.test/incident")
	second := waitServed(t, addr, roots, first, &renewed)
	// The operator is told, with the CA's explanation (RFC 9773).
	if log := logs.String(); !strings.Contains(log, "the CA asks for this certificate to be replaced early") ||
		!strings.Contains(log, "explanation_url=https://ca.test/incident") {
		t.Errorf("the early renewal was not logged with the CA's explanation URL:\n%s", log)
	}
	if ca.Replacements() < 1 {
		t.Errorf("the renewal did not name the certificate it replaces (ARI replaces)")
	}

	// A Manager started on the same storage checks the stored
	// certificate's window with no handshake asking for it.
	m.Close()
	m2 := newManager()
	defer m2.Close()
	current.Store(m2)
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	certkeeper.WaitRenewalScan(m2)
	ca.SetRenewalWindow(t, second, now.Add(-2*time.Hour), now.Add(-time.Hour), "")
	deadline := time.Now().Add(15 * time.Second)
	for renewed.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if renewed.Load() < 2 {
		t.Fatalf("the certificate found in storage was not renewed within 15 s of its window opening")
	}
	waitServed(t, addr, roots, second, nil)
}

// waitServed waits up to 15 s for renewed to count a renewal (nil: none to
// wait for) and addr to serve a certificate for ari.test other than old,
// which it returns.
func waitServed(t *testing.T, addr string, roots *x509.CertPool, old *x509.Certificate, renewed *atomic.Int32) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if renewed == nil || renewed.Load() > 0 {
			leaf, err := handshakeAddr(addr, "ari.test", roots)
			if err == nil && leaf.SerialNumber.Cmp(old.SerialNumber) != 0 {
				return leaf
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no renewed certificate served within 15 s of its window opening")
	return nil
}

// TestARIAskedOncePerCluster: three Managers sharing one storage ask the
// CA for a certificate's renewal window about once per check interval
// between them, not once each (the one that asked keeps the window and
// its next check in the record; the others use it until then); and when
// the CA moves the window to the past, the certificate is renewed once.
// Node 0, which serves, may not be the one that renews: it then leaves the
// certificate to that node (its issue lock busy) and, filestore having no
// notices, swaps the new one in at its next sync, every 200 ms here (a
// minute by default).
func TestARIAskedOncePerCluster(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	dir := t.TempDir()
	var renewed atomic.Int32
	const every = 400 * time.Millisecond
	var nodes []*certkeeper.Manager
	for range 3 {
		m := &certkeeper.Manager{
			Storage: filestore.New(dir),
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: proxy.DirectoryURL(), HTTPClient: ca.HTTPClient(),
				ChallengeOrder: []string{acmeca.TLSALPN01}}},
			Cluster: certkeeper.Cluster{SyncInterval: 200 * time.Millisecond},
			OnEvent: func(e certkeeper.Event) {
				if e.Kind == certkeeper.Renewed {
					renewed.Add(1)
				}
			},
		}
		certkeeper.SetARICheckEvery(m, every)
		t.Cleanup(func() { m.Close() })
		nodes = append(nodes, m)
	}
	// Node 0 answers the CA's validations, for itself and (through the
	// storage) the others.
	addr := serveTLS(t, nodes[0].TLSConfig(), ca.TLSPort())
	if err := nodes[0].Cert(t.Context(), "ari.test"); err != nil {
		t.Fatal(err)
	}
	for _, m := range nodes[1:] {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		certkeeper.WaitRenewalScan(m)
	}
	time.Sleep(time.Second) // the first checks, each node's own
	before := proxy.Count("renewal-info")
	const watch = 4 * time.Second
	time.Sleep(watch)
	asked := proxy.Count("renewal-info") - before
	// One node asking per interval is 10; each asking, 30. Under load
	// (-race, a busy CI machine) a slow store lets another node ask now
	// and then: fewer than two nodes' worth is the bound.
	if perNode := int(watch / every); asked >= 2*perNode || asked == 0 {
		t.Errorf("three nodes asked the CA for the window %d times in %v at a check every %v: want about %d (one node's), not %d (every node's)",
			asked, watch, every, perNode, 3*perNode)
	}

	roots := ca.IssuingRootPool(t)
	first, err := handshakeAddr(addr, "ari.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	orders := proxy.Count("new-order")
	now := time.Now()
	ca.SetRenewalWindow(t, first, now.Add(-2*time.Hour), now.Add(-time.Hour), "")
	waitServed(t, addr, roots, first, &renewed)
	time.Sleep(time.Second) // any second renewal
	if n := proxy.Count("new-order") - orders; n != 1 {
		t.Errorf("%d orders for the certificate whose window the CA moved to the past, want 1 for the cluster", n)
	}
}

// TestIssuedWindowKept: the renewal window the CA gives with a new
// certificate (the ARI request of its download) is kept in its record at
// once, with a next check twice a day on: status plans from it from the
// start, and no node sharing the storage asks the CA again before then
// (a cluster trial counted one request per node for each new
// certificate).
func TestIssuedWindowKept(t *testing.T) {
	t.Parallel()
	proxy, st, m, logs := proxiedManager(t)
	if err := m.Cert(t.Context(), "kept.test"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	certs, rec := onlyStored(t, st, now)
	w := rec.RenewalWindow
	if w == nil || !w.End.After(w.Start) || w.NextCheck.Before(now.Add(time.Hour)) || w.NextCheck.After(now.Add(12*time.Hour+time.Minute)) {
		t.Fatalf("record's renewal window after issuance = %+v; want the CA's, next checked within 12 hours (Pebble's Retry-After: 6)", w)
	}
	if n := certs[0].NextRenewal; n.Before(w.Start) || n.After(w.End) {
		t.Errorf("status plans the renewal at %v, outside the CA's window %v to %v", n, w.Start, w.End)
	}
	if n := proxy.Count("renewal-info"); n != 1 {
		t.Errorf("%d requests for the window, want 1 (the download's)", n)
	}
	// The log's renew_at is the time status shows (a trial saw them differ).
	var line struct {
		RenewAt time.Time `json:"renew_at"`
	}
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `"msg":"certificate obtained"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !line.RenewAt.Equal(certs[0].NextRenewal) {
		t.Errorf("certificate obtained, renew_at %v; status plans %v", line.RenewAt, certs[0].NextRenewal)
	}
}

// TestFirstCheckAtStatusTime: a new certificate's first renewal check is
// at the time status plans, in the window the CA gave with it. For a
// certificate shorter than the 12 hours to the first ARI check, the
// Manager planned it by the lifetime rule (half of a 10-minute lifetime)
// while status, from the window, said it was due at another time (a
// trial: "renewing" for a minute and a half while nothing happened).
func TestFirstCheckAtStatusTime(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{"default": {ValidityPeriod: 10 * time.Minute}}})
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(),
		ChallengeOrder: []string{acmeca.TLSALPN01}}}}
	defer m.Close()
	serveTLS(t, m.TLSConfig(), ca.TLSPort())
	if err := m.Cert(t.Context(), "first.test"); err != nil {
		t.Fatal(err)
	}
	certs, rec := onlyStored(t, st, time.Now())
	if rec.RenewalWindow == nil {
		t.Fatal("no renewal window kept with the certificate")
	}
	if at, ok := certkeeper.Scheduled(m, certs[0].Key); !ok || !at.Equal(certs[0].NextRenewal) {
		t.Errorf("first renewal check at %v (scheduled %v); status plans %v, in the window %v to %v",
			at, ok, certs[0].NextRenewal, rec.RenewalWindow.Start, rec.RenewalWindow.End)
	}
}

// onlyStored returns status at now of the one certificate st holds, and
// its record.
func onlyStored(t *testing.T, st storage.Storage, now time.Time) ([]status.Cert, *storage.Certificate) {
	t.Helper()
	certs, err := status.Read(t.Context(), st, now)
	if err != nil || len(certs) != 1 {
		t.Fatalf("status.Read: %d certificates, %v", len(certs), err)
	}
	data, err := st.Load(t.Context(), certs[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := storage.UnmarshalCertificate(certs[0].Key, data)
	if err != nil {
		t.Fatal(err)
	}
	return certs, rec
}

// TestWindowOverAtIssue: a renewal window that has already ended when the
// CA gives it with a new certificate (a CA replacing what it issued
// before, or one misconfigured) is not kept with it: the certificate is
// renewed by its lifetime, not at once in a loop, status plans it so, and
// the log says why (a trial saw "its lifetime is too short" for a 90-day
// certificate).
func TestWindowOverAtIssue(t *testing.T) {
	t.Parallel()
	proxy, st, m, logs := proxiedManager(t)
	now := time.Now()
	proxy.RenewalWindow(now.Add(-2*time.Hour), now.Add(-time.Hour))
	if err := m.Cert(t.Context(), "over.test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // any renewal at once
	if n := proxy.Count("new-order"); n != 1 {
		t.Errorf("%d orders, want 1: the new certificate was renewed at once", n)
	}
	certs, rec := onlyStored(t, st, time.Now())
	if rec.RenewalWindow != nil {
		t.Errorf("record keeps the window %+v, which had ended at its issuance", rec.RenewalWindow)
	}
	if certs[0].NextRenewal.Before(time.Now().Add(time.Hour)) {
		t.Errorf("status plans the renewal at %v: now, for a certificate just issued", certs[0].NextRenewal)
	}
	if at, ok := certkeeper.Scheduled(m, certs[0].Key); !ok || at.Before(time.Now().Add(time.Hour)) {
		t.Errorf("renewal scheduled at %v (%v), want later than an hour from now", at, ok)
	}
	log := logs.String()
	if strings.Contains(log, "too short") || !strings.Contains(log, "renewal window for a certificate it has just issued had already ended") {
		t.Errorf("log does not say the CA's window had ended (or blames the lifetime):\n%s", log)
	}
}

// proxiedManager returns a Manager ordering from Pebble through a fault
// proxy (tls-alpn-01, answered by the Manager on Pebble's port), its
// storage and its JSON log, closed when the test ends.
func proxiedManager(t *testing.T) (*testca.FaultProxy, storage.Storage, *certkeeper.Manager, *testsvc.Buffer) {
	t.Helper()
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	st := filestore.New(t.TempDir())
	logs := &testsvc.Buffer{}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: proxy.DirectoryURL(), HTTPClient: ca.HTTPClient(),
		ChallengeOrder: []string{acmeca.TLSALPN01}}}, Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	t.Cleanup(func() { m.Close() })
	serveTLS(t, m.TLSConfig(), ca.TLSPort())
	return proxy, st, m, logs
}
