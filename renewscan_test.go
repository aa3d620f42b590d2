package certkeeper_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// TestRenewalScanWaitsForStorage: a node started while its Redis is down
// (a host that boots certkeeper before Redis) lists the stored
// certificates once Redis answers and schedules their renewals; before,
// the start-up scan gave up and only a restart scheduled them (trial 11).
// Real Redis, stopped and started again on the same address.
func TestRenewalScanWaitsForStorage(t *testing.T) {
	rs := testsvc.Redis(t)
	rs.Stop()
	st, err := redisstore.Open("redis://" + rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs testsvc.Buffer
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	defer m.Close()
	key, _ := storage.CertificateKey("local", "a.test")
	certkeeper.Scheduled(m, key) // starts the Manager, and its scan
	const failed = "retrying until the storage answers"
	if !waitFor(10*time.Second, func() bool { return strings.Contains(logs.String(), failed) }) {
		t.Fatalf("no warning that the scan waits for the storage:\n%s", logs.String())
	}

	// Redis is back, holding a certificate another node obtained.
	rs.Restart(t)
	fs := filestore.New(t.TempDir())
	other := &certkeeper.Manager{Storage: fs, Issuers: []issuer.Issuer{&localca.CA{Storage: fs}}}
	defer other.Close()
	if err := other.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	data, err := fs.Load(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { _, ok := certkeeper.Scheduled(m, key); return ok }) {
		t.Fatalf("the stored certificate was not scheduled once Redis answered:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "storage answers again") {
		t.Errorf("no note that the scan went through:\n%s", logs.String())
	}
}
