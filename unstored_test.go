package certkeeper_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestIssuedNotStored: a certificate the CA issued that storage refuses
// (here a directory squats on the record's file, as a full disk refuses
// the write, whoever runs the test) is served from memory, not ordered
// again at the next handshake, and stored once storage takes it; a
// restart then serves it without an order (trial 28: it was thrown away,
// the handshake failed, and every retry ordered a new one).
func TestIssuedNotStored(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	st := filestore.New(dir)
	m := newACMEManager(ca, st, policy.Allowlist("full.test"))
	certkeeper.SetUnstoredRetryEvery(m, 100*time.Millisecond)
	key, err := storage.CertificateKey(certkeeper.IssuerIDs(m)[0], "full.test")
	if err != nil {
		t.Fatal(err)
	}
	squat := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Join(squat, "squatter"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := serve(t, m, ca)
	roots := ca.IssuingRootPool(t)

	leaf, err := s.handshake(t, "full.test", roots)
	if err != nil {
		t.Fatalf("handshake while storage refuses the record: %v", err)
	}
	if again, err := s.handshake(t, "full.test", roots); err != nil || !again.Equal(leaf) {
		t.Fatalf("second handshake: %v; want the same certificate from memory", err)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	if _, err := st.Load(t.Context(), key); err == nil {
		t.Fatal("the record is stored although a directory holds its place")
	}
	if got := m.Unstored(); len(got) != 1 || !slices.Equal(got[0], []string{"full.test"}) {
		t.Errorf("Unstored() = %v, want [[full.test]]: a restart would lose it", got)
	}

	if err := os.RemoveAll(squat); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := st.Load(t.Context(), key)
		if err == nil {
			_, stored, err := storage.UnmarshalCertificateLeaf(key, data)
			if err != nil || !stored.Equal(leaf) {
				t.Fatalf("stored record: %v; want the certificate served", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate was not stored within 10 s of storage taking it: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for deadline := time.Now().Add(5 * time.Second); len(m.Unstored()) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := m.Unstored(); len(got) != 0 {
		t.Errorf("Unstored() = %v once stored, want none", got)
	}
	s.m.Close()
	// The order Issue kept, in case the process died before storing the
	// certificate, goes once it is stored.
	if keys, err := st.List(t.Context(), "pending/"); err != nil || len(keys) != 0 {
		t.Errorf("pending orders after the certificate was stored: %v %v", keys, err)
	}
	m2 := newACMEManager(ca, st, policy.Allowlist("full.test"))
	leaf2, err := handshakeAddr(serveOn(t, m2), "full.test", roots)
	if err != nil || !leaf2.Equal(leaf) {
		t.Fatalf("after a restart: %v; want the stored certificate", err)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("orders after the restart = %d, want 1", n)
	}
}
