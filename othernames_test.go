package certkeeper_test

import (
	"crypto/tls"
	"sync/atomic"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
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
