package certkeeper_test

import (
	"context"
	"crypto/tls"
	"fmt"
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

// certLoads counts the loads of certificate records from a real store.
type certLoads struct {
	storage.Storage
	n atomic.Int64
}

func (s *certLoads) Load(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, storage.CertificatePrefix("")) {
		s.n.Add(1)
	}
	return s.Storage.Load(ctx, key)
}

// TestRefusedFloodReadsBounded: a flood of handshakes for names the
// policy refuses costs storage reads only up to the node's lookup rate
// (100 a second, a burst of 200): past it the policy decides first for a
// name no stored certificate is known for. Each such handshake cost two
// reads per CA before the policy refused it, round trips on the storage
// every node shares (a security trial: 2,000 Redis GETs for 500 refused
// names). A stored certificate whose name the policy no longer allows is
// still served in the flood: the node knows it is stored.
func TestRefusedFloodReadsBounded(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca := &localca.CA{Storage: st}
	// kept.test, stored by a Manager that allowed it.
	old := &certkeeper.Manager{Policy: policy.Allowlist("kept.test"), Storage: st, Issuers: []issuer.Issuer{ca}}
	if _, err := old.GetCertificate(&tls.ClientHelloInfo{ServerName: "kept.test"}); err != nil {
		t.Fatal(err)
	}
	old.Close()

	counted := &certLoads{Storage: st}
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: counted, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, CacheSize: 1}
	t.Cleanup(func() { m.Close() })
	certkeeper.WaitRenewalScan(m)
	counted.n.Store(0)
	const flood = 2000
	start := time.Now()
	for i := range flood {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: fmt.Sprintf("n%d.scanner.test", i)}); err == nil {
			t.Fatalf("a name the policy refuses got a certificate")
		}
	}
	took := time.Since(start)
	// Two reads (the name, its wildcard) per lookup within the rate.
	if n, most := counted.n.Load(), 2*(200+int64(100*took.Seconds())+10); n > most {
		t.Errorf("%d refused handshakes in %s read %d certificate records, want at most %d (the lookup rate's)", flood, took.Round(time.Millisecond), n, most)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "kept.test"}); err != nil {
		t.Errorf("a stored certificate the policy no longer allows, asked for in the flood: %v", err)
	}
	t.Logf("%d refused handshakes in %s read %d records", flood, took.Round(time.Millisecond), counted.n.Load())
}
