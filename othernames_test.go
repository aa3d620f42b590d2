package certkeeper_test

import (
	"context"
	"crypto/tls"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestStoredOtherNames: a stored certificate for several names is found
// by any of them, not only the first (its key's): after it leaves the
// bounded cache, and by a Manager started later on the same storage. A
// handshake for a second name ordered a certificate of its own, or, with
// no Policy, failed.
func TestStoredOtherNames(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca := &localca.CA{Storage: st}
	var ordered atomic.Int32
	newManager := func() *certkeeper.Manager {
		m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}, CacheSize: 1,
			OnEvent: func(e certkeeper.Event) {
				if e.Kind == certkeeper.Obtained {
					ordered.Add(1)
				}
			}}
		t.Cleanup(func() { m.Close() })
		return m
	}
	m := newManager()
	if err := m.Cert(t.Context(), "a.test", "b.test"); err != nil {
		t.Fatal(err)
	}
	if err := m.Cert(t.Context(), "c.test"); err != nil { // a.test's leaves the cache of one
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "b.test"}
	if _, err := m.GetCertificate(hello); err != nil {
		t.Errorf("b.test, stored with a.test, after it left the cache: %v", err)
	}
	m.Close()

	m2 := newManager()
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	certkeeper.WaitRenewalScan(m2)
	c, err := m2.GetCertificate(hello)
	if err != nil {
		t.Fatalf("b.test from a Manager started on the storage: %v", err)
	}
	if c.Leaf.Subject.CommonName != "a.test" && c.Leaf.DNSNames[0] != "a.test" {
		t.Errorf("b.test is served %v, not the stored certificate for a.test and b.test", c.Leaf.DNSNames)
	}
	if ordered := ordered.Load(); ordered != 2 {
		t.Errorf("%d certificates ordered, want 2 (a.test with b.test, c.test)", ordered)
	}
}

// slowLoads is a storage whose stored certificates take a while to load,
// as a busy Redis's do, while a miss is answered at once: the start-up
// scan is still reading when a handshake for a name not stored under its
// own key has looked and found nothing.
type slowLoads struct {
	storage.Storage
}

func (s slowLoads) Load(ctx context.Context, key string) ([]byte, error) {
	data, err := s.Storage.Load(ctx, key)
	if err == nil && strings.HasPrefix(key, "certificates/") {
		time.Sleep(300 * time.Millisecond)
	}
	return data, err
}

// TestStoredOtherNamesAtStart: a handshake for a stored certificate's
// second name that comes while the start-up scan is still reading (it
// indexes the other names) is served that certificate, not one ordered
// for it alone (a trial's program, restarted, asked at once).
func TestStoredOtherNamesAtStart(t *testing.T) {
	dir := t.TempDir()
	st := filestore.New(dir)
	ca := &localca.CA{Storage: st}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca}}
	if err := m.Cert(t.Context(), "a.test", "b.test"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	var ordered atomic.Int32
	m2 := &certkeeper.Manager{Storage: slowLoads{filestore.New(dir)}, Issuers: []issuer.Issuer{ca}, Policy: policy.Allowlist("a.test", "b.test"),
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Obtained {
				ordered.Add(1)
			}
		}}
	defer m2.Close()
	c, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "b.test"})
	if err != nil {
		t.Fatal(err)
	}
	if n := ordered.Load(); n != 0 || len(c.Leaf.DNSNames) != 2 {
		t.Errorf("b.test at start: served %v after %d orders, want the stored certificate for a.test and b.test, no order", c.Leaf.DNSNames, n)
	}
}
