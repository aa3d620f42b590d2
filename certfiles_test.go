package certkeeper_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/selfsigned"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// writeCertFile writes a self-signed ECDSA pair for names, valid for
// lifetime.
func writeCertFile(t *testing.T, cf certkeeper.CertFile, lifetime time.Duration, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeCertFileKey(t, cf, key, lifetime, names...)
}

// writeCertFileKey writes a self-signed pair of key for names.
func writeCertFileKey(t *testing.T, cf certkeeper.CertFile, key crypto.Signer, lifetime time.Duration, names ...string) {
	t.Helper()
	chain, err := selfsigned.Certificate(key, names, lifetime)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf.Key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf.Cert, chain, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCertFiles: a certificate from files is served for its names
// (exact and wildcard) ahead of on-demand issuance, reported "fine" while
// more than half of a 10-day life is left (it was "expiring" from the day
// it was made: status.TestIsExpiring has the rule), and reloaded when its
// files change; a broken replacement leaves the previous one serving.
func TestCertFiles(t *testing.T) {
	dir := t.TempDir()
	cf := certkeeper.CertFile{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "c.key")}
	writeCertFile(t, cf, 10*24*time.Hour, "m.test", "*.m.test")
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("m.test", "x.m.test"))
	m.CertFiles = []certkeeper.CertFile{cf}
	m.CertFileCheck = 20 * time.Millisecond

	first, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "m.test"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "X.m.test"}); err != nil || got != first {
		t.Errorf("GetCertificate(X.m.test) = %v, %v; want the file's wildcard certificate", got, err)
	}
	if s := m.CertFileStatus(); len(s) != 1 || s[0].State != "fine" || len(s[0].Names) != 2 {
		t.Errorf("CertFileStatus() = %+v, want one certificate, two names, fine (10 days left of 10)", s)
	}
	if keys, _ := st.List(t.Context(), storage.CertificatePrefix("")); len(keys) != 0 {
		t.Errorf("a name covered by files was obtained on demand: %v", keys)
	}

	// A half-written replacement (a key that does not match) keeps the old one.
	if err := os.WriteFile(cf.Key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got, _ := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "m.test"}); got != first {
		t.Error("a broken replacement replaced the served certificate")
	}
	if s := m.CertFileStatus(); s[0].Err == "" {
		t.Error("CertFileStatus does not report the broken files")
	}
	writeCertFile(t, cf, 365*24*time.Hour, "m.test")
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "m.test"})
		if err == nil && got != first {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("replaced files were not reloaded within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := m.CertFileStatus(); s[0].State != "fine" || s[0].Err != "" {
		t.Errorf("after the reload: %+v, want fine, no error", s[0])
	}
	// x.m.test is no longer covered by the files: it is obtained on demand.
	if got, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.m.test"}); err != nil || got.Leaf.Issuer.String() == got.Leaf.Subject.String() {
		t.Errorf("GetCertificate(x.m.test) after the wildcard went: %v; want one from the local CA", err)
	}
}

// TestCertFilesBad: files that cannot be read or parsed fail at first use.
func TestCertFilesBad(t *testing.T) {
	dir := t.TempDir()
	m := localManager(t, filestore.New(t.TempDir()), nil)
	m.CertFiles = []certkeeper.CertFile{{Cert: filepath.Join(dir, "missing.pem"), Key: filepath.Join(dir, "missing.key")}}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err == nil {
		t.Error("GetCertificate with missing CertFiles succeeded, want the files' error")
	}
}

// lockedWriter is a log destination the Manager's background work and the
// test share.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *lockedWriter) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Count(w.buf.String(), s)
}

// TestCertFilesBrokenWarnsOnce: files that cannot be read again (a key
// file removed) are logged once, and again when the failure changes, not
// at every check (every 5 s by default: 17,280 warnings a day).
func TestCertFilesBrokenWarnsOnce(t *testing.T) {
	dir := t.TempDir()
	cf := certkeeper.CertFile{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "c.key")}
	writeCertFile(t, cf, 90*24*time.Hour, "w.test")
	var logs lockedWriter
	m := localManager(t, filestore.New(t.TempDir()), nil)
	m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m.CertFiles = []certkeeper.CertFile{cf}
	m.CertFileCheck = 10 * time.Millisecond
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	const warning = "reading changed certificate files"
	if err := os.Remove(cf.Key); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // about 30 checks
	if n := logs.count(warning); n != 1 {
		t.Errorf("a removed key file was logged %d times in 30 checks, want once", n)
	}
	if err := os.WriteFile(cf.Key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := logs.count(warning); n != 2 {
		t.Errorf("after the failure changed: %d warnings, want 2", n)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "w.test"}); err != nil {
		t.Errorf("the previous certificate no longer serves: %v", err)
	}
}

// TestCloseAfterStartFailed: a Manager whose Start failed (CertFiles that
// cannot be read) has begun its background work all the same; Close
// stops it (its watchers' channels close) and returns the error.
func TestCloseAfterStartFailed(t *testing.T) {
	dir := t.TempDir()
	m := localManager(t, filestore.New(t.TempDir()), nil)
	m.CertFiles = []certkeeper.CertFile{{Cert: filepath.Join(dir, "missing.pem"), Key: filepath.Join(dir, "missing.key")}}
	startErr := m.Start()
	if startErr == nil {
		t.Fatal("Start with missing CertFiles succeeded")
	}
	events, _ := m.Watch()
	if err := m.Close(); err == nil || err.Error() != startErr.Error() {
		t.Errorf("Close = %v, want Start's error %v", err, startErr)
	}
	select {
	case _, open := <-events:
		if open {
			t.Error("an event after Close")
		}
	case <-time.After(5 * time.Second):
		t.Error("Close of a Manager whose Start failed did not stop it: its Watch channel is still open")
	}
}

// TestCertFilesCounted: a handshake served from CertFiles counts in
// Stats().HandshakesMemory (the certkeeper_handshakes_total{source="memory"}
// metric), as any other certificate held in memory; it counted nowhere.
func TestCertFilesCounted(t *testing.T) {
	dir := t.TempDir()
	cf := certkeeper.CertFile{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "c.key")}
	writeCertFile(t, cf, 90*24*time.Hour, "s.test")
	m := localManager(t, filestore.New(t.TempDir()), nil)
	m.CertFiles = []certkeeper.CertFile{cf}
	for range 3 {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "s.test"}); err != nil {
			t.Fatal(err)
		}
	}
	if s := m.Stats(); s.HandshakesMemory != 3 || s.HandshakesStorage != 0 || s.HandshakesIssued != 0 {
		t.Errorf("after 3 handshakes served from CertFiles: memory %d, storage %d, issued %d; want 3, 0, 0",
			s.HandshakesMemory, s.HandshakesStorage, s.HandshakesIssued)
	}
}

// TestCertForCertFiles: Cert for names CertFiles serve orders nothing and
// returns nil; the files' certificate keeps being served (trial 25: it
// ordered one that then shadowed the files'). A name the files do not
// cover is ordered as before.
func TestCertForCertFiles(t *testing.T) {
	dir := t.TempDir()
	cf := certkeeper.CertFile{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "c.key")}
	writeCertFile(t, cf, 30*24*time.Hour, "files.test")
	st := filestore.New(t.TempDir())
	m := localManager(t, st, nil)
	m.CertFiles = []certkeeper.CertFile{cf}
	if err := m.Cert(t.Context(), "files.test"); err != nil {
		t.Fatalf("Cert(files.test) = %v", err)
	}
	if keys, _ := st.List(t.Context(), storage.CertificatePrefix("")); len(keys) != 0 {
		t.Errorf("Cert for a name CertFiles serve stored %v", keys)
	}
	if err := m.Cert(t.Context(), "files.test", "other.test"); err != nil {
		t.Fatalf("Cert(files.test, other.test) = %v", err)
	}
	if keys, _ := st.List(t.Context(), storage.CertificatePrefix("")); len(keys) != 1 {
		t.Errorf("Cert for names CertFiles serve in part stored %v, want one certificate", keys)
	}
}

// TestCertFilesRSAPair: a name with an ECDSA pair and an RSA pair in
// CertFiles (nginx's two ssl_certificate lines) serves the RSA one to a
// client that cannot use ECDSA and the ECDSA one to the others, in
// GetCertificate and in a real handshake; an RSA pair alone serves
// everyone.
func TestCertFilesRSAPair(t *testing.T) {
	dir := t.TempDir()
	ec := certkeeper.CertFile{Cert: filepath.Join(dir, "ec.pem"), Key: filepath.Join(dir, "ec.key")}
	rs := certkeeper.CertFile{Cert: filepath.Join(dir, "rsa.pem"), Key: filepath.Join(dir, "rsa.key")}
	writeCertFile(t, ec, 90*24*time.Hour, "r.test")
	rsaKey, err := issuer.RSA2048.Generate()
	if err != nil {
		t.Fatal(err)
	}
	writeCertFileKey(t, rs, rsaKey, 90*24*time.Hour, "r.test", "only-rsa.test")
	m := localManager(t, filestore.New(t.TempDir()), policy.Allowlist())
	m.CertFiles = []certkeeper.CertFile{rs, ec} // the order does not matter
	for _, tc := range []struct {
		hello *tls.ClientHelloInfo
		name  string
		want  issuer.KeyType
	}{{modernHello, "r.test", issuer.ECDSAP256}, {rsaOnlyHello, "r.test", issuer.RSA2048},
		{modernHello, "only-rsa.test", issuer.RSA2048}, {rsaOnlyHello, "only-rsa.test", issuer.RSA2048}} {
		h := *tc.hello
		h.ServerName = tc.name
		c, err := m.GetCertificate(&h)
		if err != nil || issuer.KeyTypeOf(c.Leaf.PublicKey) != tc.want {
			t.Errorf("%s for %v: %v; want %s", tc.name, h.SignatureSchemes, err, tc.want)
		}
	}

	addr := serveTLS(t, m.TLSConfig(), 0)
	for _, tc := range []struct {
		client *tls.Config
		want   issuer.KeyType
	}{
		{&tls.Config{ServerName: "r.test", InsecureSkipVerify: true}, issuer.ECDSAP256},
		{&tls.Config{ServerName: "r.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, // an old RSA-only client
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}, issuer.RSA2048},
	} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tc.client)
		if err != nil {
			t.Fatalf("handshake (max version %x): %v", tc.client.MaxVersion, err)
		}
		got := issuer.KeyTypeOf(conn.ConnectionState().PeerCertificates[0].PublicKey)
		conn.Close()
		if got != tc.want {
			t.Errorf("handshake (max version %x) served %s, want %s", tc.client.MaxVersion, got, tc.want)
		}
	}
}

// TestCertFilesOverlap: pairs sharing a name keep their other names (a
// later pair took b.test and, with it, a.test from the earlier one), and a
// reload that drops the shared name gives it back to the pair still
// covering it.
func TestCertFilesOverlap(t *testing.T) {
	dir := t.TempDir()
	ab := certkeeper.CertFile{Cert: filepath.Join(dir, "ab.pem"), Key: filepath.Join(dir, "ab.key")}
	bc := certkeeper.CertFile{Cert: filepath.Join(dir, "bc.pem"), Key: filepath.Join(dir, "bc.key")}
	writeCertFile(t, ab, 90*24*time.Hour, "a.test", "b.test")
	writeCertFile(t, bc, 90*24*time.Hour, "b.test", "c.test")
	m := localManager(t, filestore.New(t.TempDir()), policy.Allowlist())
	m.CertFiles = []certkeeper.CertFile{ab, bc}
	m.CertFileCheck = 20 * time.Millisecond
	servedFrom := func(name string) string {
		t.Helper()
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			return "none: " + err.Error()
		}
		return strings.Join(c.Leaf.DNSNames, ",")
	}
	for name, want := range map[string]string{"a.test": "a.test,b.test", "b.test": "b.test,c.test", "c.test": "b.test,c.test"} {
		if got := servedFrom(name); got != want {
			t.Errorf("%s served from %q, want %q", name, got, want)
		}
	}
	writeCertFile(t, bc, 90*24*time.Hour, "c.test")
	deadline := time.Now().Add(5 * time.Second)
	for servedFrom("c.test") != "c.test" {
		if time.Now().After(deadline) {
			t.Fatal("bc's new files were not reloaded within 5 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := servedFrom("b.test"); got != "a.test,b.test" {
		t.Errorf("after bc dropped b.test, b.test is served from %q, want ab's pair", got)
	}
}
