package certkeeper_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// plantRecord stores, under the key of name at issuer "local", a record
// that claims names and holds a self-signed leaf for leafName valid from
// notBefore to notAfter: what anyone who can write storage could put there.
func plantRecord(t *testing.T, st storage.Storage, name string, names []string, leafName string, notBefore, notAfter time.Time) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(666), Subject: pkix.Name{CommonName: leafName}, DNSNames: []string{leafName},
		NotBefore: notBefore, NotAfter: notAfter,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	rec := &storage.Certificate{Names: names, Issuer: "local", KeyPEM: keyPEM,
		ChainPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		NotBefore: notBefore, NotAfter: notAfter, Obtained: notBefore}
	data, err := storage.MarshalCertificate(rec)
	if err != nil {
		t.Fatal(err)
	}
	key, err := storage.CertificateKey("local", name)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
	return key
}

// TestDamagedRecordsContained: records planted in storage — one naming no
// name, one expired long ago naming no name, one whose leaf is for another
// name than it claims — neither stop the Manager nor get served. A
// handshake for such a name gets a proper certificate, the expired-record
// sweep and a metrics scrape go on, and each bad record is logged by its
// key.
func TestDamagedRecordsContained(t *testing.T) {
	st := filestore.New(t.TempDir())
	now := time.Now()
	emptyKey := plantRecord(t, st, "empty.test", []string{}, "empty.test", now.Add(-time.Hour), now.Add(30*24*time.Hour))
	staleKey := plantRecord(t, st, "stale.test", nil, "stale.test", now.Add(-100*time.Hour), now.Add(-48*time.Hour))
	liarKey := plantRecord(t, st, "liar.test", []string{"liar.test"}, "other.test", now.Add(-time.Hour), now.Add(30*24*time.Hour))

	logs := &testsvc.Buffer{}
	m := &certkeeper.Manager{
		Policy:  policy.Allowlist("empty.test", "liar.test", "good.test"),
		Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	t.Cleanup(func() { m.Close() })
	x := metrics.New()
	if err := x.Register(m); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"empty.test", "liar.test", "good.test"} {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatalf("GetCertificate(%q) = %v, want a new certificate in place of the bad record\nlogs:\n%s", name, err, logs)
		}
		if err := c.Leaf.VerifyHostname(name); err != nil || c.Leaf.SerialNumber.Int64() == 666 {
			t.Errorf("GetCertificate(%q) served the planted leaf for %v (serial %v): %v", name, c.Leaf.DNSNames, c.Leaf.SerialNumber, err)
		}
	}
	certkeeper.SweepExpired(m, t.Context())
	fams, err := x.Registry().Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	managed := 0
	for _, f := range fams {
		if f.GetName() == "certkeeper_certificate_expiry_seconds" {
			managed = len(f.GetMetric())
		}
	}
	if managed != 3 {
		t.Errorf("certkeeper_certificate_expiry_seconds has %d series, want 3 (the new certificates)", managed)
	}
	for _, key := range []string{emptyKey, staleKey, liarKey} {
		if !strings.Contains(logs.String(), key) {
			t.Errorf("no log line names the bad record %s\nlogs:\n%s", key, logs)
		}
	}
}

// panicList is a storage whose List panics: a backend with a bug.
type panicList struct{ storage.Storage }

func (panicList) List(context.Context, string) ([]string, error) { panic("List: backend bug") }

// TestPanicContained: a panic in a piece of background work — here a
// Policy that panics while deciding one name, and a storage backend that
// panics during the expired-record sweep — fails that piece of work, logged
// with its name, and not the process: the name's handshake fails, the
// next handshake for it is decided again, and other names are served.
func TestPanicContained(t *testing.T) {
	st := filestore.New(t.TempDir())
	logs := &testsvc.Buffer{}
	pol := policy.Func(func(ctx context.Context, name string) error {
		if name == "boom.test" {
			var names []string
			_ = names[0] // a bug in the caller's policy
		}
		return nil
	})
	m := &certkeeper.Manager{Policy: pol, Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	t.Cleanup(func() { m.Close() })
	for range 2 {
		if c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "boom.test"}); err == nil {
			t.Fatalf("GetCertificate(%q) with a panicking policy = %v, nil; want an error", "boom.test", c.Leaf.DNSNames)
		} else if !strings.Contains(err.Error(), "boom.test") {
			t.Errorf("GetCertificate(%q) error = %v, want it to name the name", "boom.test", err)
		}
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "fine.test"}); err != nil {
		t.Fatalf("GetCertificate(%q) after a panic for another name = %v", "fine.test", err)
	}
	if out := logs.String(); !strings.Contains(out, "panic") || !strings.Contains(out, "name=boom.test") {
		t.Errorf("the panic is not logged with the name:\n%s", out)
	}

	m2 := &certkeeper.Manager{Storage: panicList{st}, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Logger: slog.New(slog.NewTextHandler(logs, nil))}
	t.Cleanup(func() { m2.Close() })
	certkeeper.SweepExpired(m2, t.Context())
	if out := logs.String(); !strings.Contains(out, "List: backend bug") {
		t.Errorf("the sweep's panic is not logged:\n%s", out)
	}
}
