package certkeeper_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// revokeRequest revokes name's certificates stored from ca, through a
// storage handle of its own (as another process, the CLI, has).
func revokeRequest(ca *testca.CA, st storage.Storage, name, reason string) certkeeper.RevokeRequest {
	return certkeeper.RevokeRequest{Name: name, IssuerID: storage.IssuerID(ca.DirectoryURL()), Reason: reason,
		Revoker: func(email string) (certkeeper.Revoker, error) {
			return &acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Storage: st, Email: email}, nil
		}}
}

// TestRevokeStoredReplacesServed: a certificate a running Manager serves
// is revoked from another storage handle; the CA has it revoked with the
// reason, and the Manager serves a new certificate with a new key within
// a few sync intervals, without a handshake asking for it first.
func TestRevokeStoredReplacesServed(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	m := newACMEManager(ca, filestore.New(dir), policy.Allowlist("a.test"))
	m.Cluster.SyncInterval = 100 * time.Millisecond
	s := serve(t, m, ca)
	roots := ca.IssuingRootPool(t)
	old, err := s.handshake(t, "a.test", roots)
	if err != nil {
		t.Fatal(err)
	}

	events, stop := m.Watch()
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := filestore.New(dir)
	got, err := certkeeper.RevokeStored(ctx, cli, revokeRequest(ca, cli, "a.test", "keyCompromise"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Leaf.Equal(old) || got[0].Replaced {
		t.Fatalf("RevokeStored = %+v, want the served certificate", got)
	}
	if cs := ca.CertStatus(t, old.SerialNumber); cs.Status != "Revoked" || cs.Reason == nil || *cs.Reason != 1 {
		t.Fatalf("CA says %+v of the revoked certificate, want Revoked, reason 1", cs)
	}

	// The Manager sees the mark at its next sync and renews at once.
	var cur *storage.Certificate
	if !waitFor(30*time.Second, func() bool {
		data, err := cli.Load(ctx, got[0].Key)
		if err != nil {
			return false
		}
		cur, err = storage.UnmarshalCertificate(got[0].Key, data)
		return err == nil && cur.Revoked == nil
	}) {
		t.Fatal("the revoked certificate was not replaced in storage within 30 s")
	}
	// The Manager stores the new certificate before it serves it: wait
	// (briefly) for the handshake to see it too.
	var leaf *x509.Certificate
	if !waitFor(5*time.Second, func() bool {
		leaf, err = s.handshake(t, "a.test", roots)
		return err == nil && !leaf.Equal(old)
	}) {
		t.Fatalf("the revoked certificate %s is still served 5 s after its replacement was stored (err %v)", old.SerialNumber.Text(16), err)
	}
	if leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(old.PublicKey) {
		t.Fatal("the replacement has the revoked certificate's key; want a new key")
	}
	if cs := ca.CertStatus(t, leaf.SerialNumber); cs.Status != "Valid" {
		t.Errorf("the replacement is %s at the CA", cs.Status)
	}
	var kinds []certkeeper.EventKind
	for len(events) > 0 {
		kinds = append(kinds, (<-events).Kind)
	}
	if !slices.Contains(kinds, certkeeper.Revoked) || !slices.Contains(kinds, certkeeper.Renewed) {
		t.Errorf("events %v, want Revoked and Renewed", kinds)
	}
	if n := ca.Orders(); n != 2 {
		t.Errorf("orders = %d, want 2 (the first, and one replacement)", n)
	}
}

// TestRevokeStoredThenStart: a certificate revoked while no Manager runs
// (here for superseded, signed by the account that ordered it) is
// replaced by the next Manager to start, at its start-up scan; revoking
// from the wrong CA names the one that holds it.
func TestRevokeStoredThenStart(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// One listener on the port Pebble validates tls-alpn-01 on, served
	// by the Manager running at the time.
	var running atomic.Pointer[certkeeper.Manager]
	s := &server{ca: ca, addr: serveTLS(t, &tls.Config{
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return running.Load().TLSConfig(), nil },
	}, ca.TLSPort())}

	first := newACMEManager(ca, filestore.New(dir), nil)
	defer first.Close()
	running.Store(first)
	if err := first.Cert(ctx, "b.test"); err != nil {
		t.Fatal(err)
	}
	roots := ca.IssuingRootPool(t)
	old, err := s.handshake(t, "b.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	first.Close()

	cli := filestore.New(dir)
	wrong := revokeRequest(ca, cli, "b.test", "superseded")
	wrong.IssuerID = "ca.example-directory"
	_, err = certkeeper.RevokeStored(ctx, cli, wrong)
	var nse *certkeeper.NotStoredError
	if !errors.As(err, &nse) || len(nse.Elsewhere) != 1 || nse.Elsewhere[0] != ca.DirectoryURL() {
		t.Fatalf("revoking from another CA: %v, want a NotStoredError naming %s", err, ca.DirectoryURL())
	}
	if _, err := certkeeper.RevokeStored(ctx, cli, revokeRequest(ca, cli, "b.test", "superseded")); err != nil {
		t.Fatal(err)
	}
	if cs := ca.CertStatus(t, old.SerialNumber); cs.Status != "Revoked" || cs.Reason == nil || *cs.Reason != 4 {
		t.Fatalf("CA says %+v of the revoked certificate, want Revoked, reason 4", cs)
	}

	// Again, with another reason: the CA keeps the first, and so does
	// the record.
	again, err := certkeeper.RevokeStored(ctx, cli, revokeRequest(ca, cli, "b.test", "keyCompromise"))
	if err != nil || len(again) != 1 || !again[0].Already {
		t.Fatalf("revoking again = %+v, %v; want it already revoked", again, err)
	}
	certs, err := status.Read(ctx, cli, time.Now())
	if err != nil || len(certs) != 1 || certs[0].State != status.Revoked || certs[0].Revoked != "superseded" {
		t.Fatalf("status before a Manager runs: %+v, %v; want b.test revoked (superseded)", certs, err)
	}

	m := newACMEManager(ca, filestore.New(dir), nil)
	defer m.Close()
	running.Store(m)
	if err := m.Start(); err != nil { // its start-up scan finds the mark
		t.Fatal(err)
	}
	key, _ := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), "b.test")
	if !waitFor(30*time.Second, func() bool { // no handshake asks for it first
		data, err := cli.Load(ctx, key)
		rec, err2 := storage.UnmarshalCertificate(key, data)
		return errors.Join(err, err2) == nil && rec.Revoked == nil
	}) {
		t.Fatal("the revoked certificate was not replaced in storage within 30 s of the start")
	}
	second, err := s.handshake(t, "b.test", roots)
	if err != nil || second.Equal(old) {
		t.Fatalf("after a restart the revoked certificate is still served (err %v)", err)
	}

	// Revoked again while no Manager runs, then asked for at once by a
	// handshake to a Manager not started: the revoked certificate is not
	// served, a new one is obtained for the handshake.
	m.Close()
	if _, err := certkeeper.RevokeStored(ctx, cli, revokeRequest(ca, cli, "b.test", "keyCompromise")); err != nil {
		t.Fatal(err)
	}
	third := newACMEManager(ca, filestore.New(dir), policy.Allowlist("b.test"))
	defer third.Close()
	running.Store(third)
	if leaf, err := s.handshake(t, "b.test", roots); err != nil || leaf.Equal(second) {
		t.Fatalf("a handshake to a new Manager got the revoked certificate (err %v)", err)
	}
}

// TestRevokedReplacedOnceAcrossNodes: two nodes on one storage hold a
// certificate that is revoked; they replace it with one order between
// them, and both serve the replacement, although it comes from a shorter
// profile than the revoked one (trial 20: the node that took the issue
// lock second took the shorter replacement for an older certificate and
// ordered again, and a node that did not renew kept serving the revoked
// one, refusing a stored certificate that expires sooner).
func TestRevokedReplacedOnceAcrossNodes(t *testing.T) {
	ca := testca.Start(t, testca.Options{AlwaysValid: true, Profiles: map[string]testca.Profile{
		"long":  {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
		"short": {Description: "1 day", ValidityPeriod: 24 * time.Hour},
	}})
	dir := t.TempDir()
	node := func(profile string) *certkeeper.Manager {
		m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: filestore.New(dir),
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: profile,
				Solvers: map[string]solver.Solver{acmeca.HTTP01: &http01.Solver{}}}}}
		m.Cluster.SyncInterval = 100 * time.Millisecond
		t.Cleanup(func() { m.Close() })
		return m
	}
	first := node("long")
	if err := first.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	first.Close()
	nodes := []*certkeeper.Manager{node("short"), node("short")}
	var old *x509.Certificate
	for _, m := range nodes {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
		if err != nil {
			t.Fatal(err)
		}
		old = c.Leaf
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cli := filestore.New(dir)
	if _, err := certkeeper.RevokeStored(ctx, cli, revokeRequest(ca, cli, "a.test", "keyCompromise")); err != nil {
		t.Fatal(err)
	}
	for i, m := range nodes {
		if !waitFor(30*time.Second, func() bool {
			c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
			return err == nil && !c.Leaf.Equal(old)
		}) {
			t.Fatalf("node %d still serves the revoked certificate after 30 s", i)
		}
	}
	time.Sleep(time.Second) // several syncs: a second replacement would have been ordered by now
	if n := ca.Orders(); n != 2 {
		t.Errorf("orders = %d, want 2: the first certificate and one replacement for both nodes", n)
	}
	a, _ := nodes[0].GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	b, _ := nodes[1].GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"})
	if !a.Leaf.Equal(b.Leaf) || !a.Leaf.NotAfter.Before(old.NotAfter) {
		t.Errorf("the nodes serve %s and %s; want the same, shorter-lived replacement", a.Leaf.SerialNumber.Text(16), b.Leaf.SerialNumber.Text(16))
	}
}

// TestRevokeUsesOrderingAccount: the record of a certificate an issuer
// with its own Email ordered names that account's email, not the
// Manager's, so RevokeStored asks for a revoker with it and no account is
// registered for the revocation (a library trial's record said the
// Manager's email, and its revocation registered a stray account first).
func TestRevokeUsesOrderingAccount(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	st := filestore.New(t.TempDir())
	m := newACMEManager(ca, st, nil)
	m.Email = "mgr@a.test"
	m.Issuers[0].(*acmeca.Issuer).Email = "ops@a.test"
	serve(t, m, ca)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Cert(ctx, "e.test"); err != nil {
		t.Fatal(err)
	}
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v; want one certificate", keys, err)
	}
	data, err := st.Load(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	rec, err := storage.UnmarshalCertificate(keys[0], data)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Email != "ops@a.test" {
		t.Errorf("record email %q, want ops@a.test, the ordering account's", rec.Email)
	}
	req := revokeRequest(ca, st, "e.test", "")
	var asked []string
	revoker := req.Revoker
	req.Revoker = func(email string) (certkeeper.Revoker, error) {
		asked = append(asked, email)
		return revoker(email)
	}
	if _, err := certkeeper.RevokeStored(ctx, st, req); err != nil {
		t.Fatal(err)
	}
	accounts, err := st.List(ctx, "accounts/")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, []string{"ops@a.test"}) || len(accounts) != 2 {
		t.Errorf("revoker asked for %q, accounts stored %v; want ops@a.test's alone", asked, accounts)
	}
}
