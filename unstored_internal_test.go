package certkeeper

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewalReadsUnstored: the renewal of a certificate issued and not
// stored yet reads that certificate, not the older one storage holds (nor
// nothing, which silently ended its renewals: trial 28), and reads storage
// again once the certificate is stored.
func TestRenewalReadsUnstored(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	st := filestore.New(dir)
	m := &Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, Logger: slog.New(slog.DiscardHandler),
		unstoredEvery: 50 * time.Millisecond}
	defer m.Close()
	key, err := storage.CertificateKey("local", "unstored.test")
	if err != nil {
		t.Fatal(err)
	}
	squat := filepath.Join(dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Join(squat, "squatter"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.Cert(ctx, "unstored.test"); err != nil {
		t.Fatalf("Cert while storage refuses the record: %v", err)
	}
	v, ok := m.unstored.Load(key)
	if !ok {
		t.Fatal("no certificate waiting to be stored")
	}
	want := v.(*UnstoredError).Data
	if got, err := m.loadForRenewal(ctx, key); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("loadForRenewal while not stored = %.40q…, %v; want the certificate in memory", got, err)
	}

	if err := os.RemoveAll(squat); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, waiting := m.unstored.Load(key); !waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still not stored 10 s after storage took it")
		}
	}
	stored, err := st.Load(ctx, key)
	if err != nil || !bytes.Equal(stored, want) {
		t.Fatalf("stored record: %v; want the certificate served", err)
	}
	if got, err := m.loadForRenewal(ctx, key); err != nil || !bytes.Equal(got, stored) {
		t.Errorf("loadForRenewal once stored = %v; want storage's record", err)
	}
}
