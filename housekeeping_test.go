package certkeeper_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestLastSeenKept: the last handshake for a name is written to storage
// (at Close at the latest) for "certkeeper status".
func TestLastSeenKept(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("seen.test"))
	before := time.Now().Add(-time.Second)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "seen.test"}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	seen, _, err := certkeeper.LoadStatusState(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	if got := seen["seen.test"]; got.Before(before.Truncate(time.Second)) {
		t.Errorf("last seen = %v, want about now", got)
	}
}

// TestSweepExpired: a certificate that expired more than a day ago is
// removed from storage; a valid one stays.
func TestSweepExpired(t *testing.T) {
	st := filestore.New(t.TempDir())
	oldKey := storeDated(t, st, "old.test", time.Now().Add(-100*time.Hour), time.Now().Add(-48*time.Hour))
	m := localManager(t, st, nil)
	if err := m.Cert(t.Context(), "new.test"); err != nil {
		t.Fatal(err)
	}
	certkeeper.SweepExpired(m, t.Context())
	if _, err := st.Load(t.Context(), oldKey); err == nil {
		t.Error("a certificate expired two days ago is still stored")
	}
	newKey, _ := storage.CertificateKey("local", "new.test")
	if _, err := st.Load(t.Context(), newKey); err != nil {
		t.Errorf("the valid certificate was removed: %v", err)
	}
}

// storeDated stores a self-signed certificate record for name, issuer
// local, with these dates, and returns its key.
func storeDated(t *testing.T, st storage.Storage, name string, notBefore, notAfter time.Time) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := storage.MarshalPrivateKeyPEM(key)
	rec := &storage.Certificate{Names: []string{name}, Issuer: "local", KeyPEM: keyPEM,
		ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter}
	data, _ := storage.MarshalCertificate(rec)
	k, _ := storage.CertificateKey("local", name)
	if err := st.Store(t.Context(), k, data); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestExpiredAtStart: a certificate that expired while no process ran
// (less than the sweep's day ago) is renewed at start, with no handshake
// (a handshake does not serve an expired stored certificate, so a trial's
// restarted proxy logged it as served while every handshake waited on a
// new order); one expired two days ago is left to the sweep; a record the
// scan cannot read is reported with its key.
func TestExpiredAtStart(t *testing.T) {
	st := filestore.New(t.TempDir())
	lateKey := storeDated(t, st, "late.test", time.Now().Add(-90*time.Hour), time.Now().Add(-time.Hour))
	oldKey := storeDated(t, st, "old.test", time.Now().Add(-100*time.Hour), time.Now().Add(-48*time.Hour))
	badKey, _ := storage.CertificateKey("local", "bad.test")
	if err := st.Store(t.Context(), badKey, []byte(`{"names": ["bad.te`)); err != nil {
		t.Fatal(err)
	}
	var logs testsvc.Buffer
	m := localManager(t, st, nil)
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	notAfter := func(key string) time.Time {
		data, err := st.Load(t.Context(), key)
		if err != nil {
			return time.Time{}
		}
		rec, err := storage.UnmarshalCertificate(key, data)
		if err != nil {
			return time.Time{}
		}
		return rec.NotAfter
	}
	deadline := time.Now().Add(15 * time.Second)
	for notAfter(lateKey).Before(time.Now()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := notAfter(lateKey); got.Before(time.Now()) {
		t.Errorf("late.test, expired an hour ago: not_after %v after 15 s, want renewed at start", got)
	}
	if got := notAfter(oldKey); got.After(time.Now()) {
		t.Errorf("old.test, expired two days ago, was renewed (not_after %v): want it left to the sweep", got)
	}
	for !strings.Contains(logs.String(), "stored certificate records cannot be read") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if out := logs.String(); !strings.Contains(out, "stored certificate records cannot be read") || !strings.Contains(out, badKey) {
		t.Errorf("the damaged record %s is not reported at start:\n%s", badKey, out)
	}
}

// TestWatch: a watcher receives the Manager's events; stop and Close end
// the subscription.
func TestWatch(t *testing.T) {
	m := localManager(t, filestore.New(t.TempDir()), nil)
	events, stop := m.Watch()
	defer stop()
	if err := m.Cert(t.Context(), "w.test"); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Kind != certkeeper.Obtained || e.Names[0] != "w.test" || e.Issuer != "local" || e.NotAfter.IsZero() {
			t.Errorf("event = %+v, want Obtained for w.test from local", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	m.Close()
	for range events { // drained and closed by Close
	}
}

// TestCloseEndsGoroutines: the renewal scheduler and housekeeping stop
// with Close.
func TestCloseEndsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	st := filestore.New(t.TempDir())
	m := localManager(t, st, nil)
	for _, n := range []string{"g1.test", "g2.test"} {
		if err := m.Cert(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	if runtime.NumGoroutine() <= before {
		t.Fatal("no background goroutine started")
	}
	m.Close()
	waitGoroutines(t, before)
}
