package certkeeper_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"runtime"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
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
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "old.test"}, DNSNames: []string{"old.test"},
		NotBefore: time.Now().Add(-100 * time.Hour), NotAfter: time.Now().Add(-48 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := storage.MarshalPrivateKeyPEM(key)
	rec := &storage.Certificate{Names: []string{"old.test"}, Issuer: "local", KeyPEM: keyPEM,
		ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter}
	data, _ := storage.MarshalCertificate(rec)
	oldKey, _ := storage.CertificateKey("local", "old.test")
	if err := st.Store(t.Context(), oldKey, data); err != nil {
		t.Fatal(err)
	}
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
