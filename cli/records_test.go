package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// plantNoNames rewrites the stored record of name (issued by the local CA
// into storageDir) to name no name, as anyone who can write storage could,
// and returns its storage key.
func plantNoNames(t *testing.T, storageDir, name string) string {
	t.Helper()
	key := "certificates/local/" + name + ".json"
	file := filepath.Join(storageDir, filepath.FromSlash(key))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	rec["names"] = []string{}
	if data, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// localRoots returns the roots of the local CA in storageDir.
func localRoots(t *testing.T, storageDir string) *x509.CertPool {
	t.Helper()
	r := ck(t, 30*time.Second, "ca", "root", "--storage", storageDir)
	roots := x509.NewCertPool()
	if r.code != 0 || !roots.AppendCertsFromPEM([]byte(r.stdout)) {
		t.Fatalf("ca root: exit %d\n%s", r.code, r.stderr)
	}
	return roots
}

// TestStoredRecordWithoutNames: a certificate record with "names": []
// planted in storage is reported by its key — by status, by storage
// export (which leaves it out), and by a running proxy — and kills
// nothing: after a handshake for its name the proxy is still up and serves
// that name with a new certificate and another name as well.
func TestStoredRecordWithoutNames(t *testing.T) {
	storageDir := t.TempDir()
	issueLocal(t, storageDir, "bad.test")
	roots := localRoots(t, storageDir)
	badKey := plantNoNames(t, storageDir, "bad.test")

	// status lists the record as damaged and exits 1 naming it.
	r := ck(t, 30*time.Second, "status", "--json", "--storage", storageDir)
	if r.code != 1 || !strings.Contains(r.stderr, badKey) {
		t.Errorf("status: exit %d, stderr %q; want exit 1 naming the damaged record %s", r.code, r.stderr, badKey)
	}
	var list []certStatus
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	var damaged bool
	for _, c := range list {
		if c.Key == badKey {
			damaged = c.State == "damaged"
		}
	}
	if !damaged {
		t.Errorf("status does not list %s as damaged: %+v", badKey, list)
	}
	archive := filepath.Join(t.TempDir(), "state.tar.gz")
	if r := ck(t, 30*time.Second, "storage", "export", "--storage", storageDir, "--out", archive); r.code != 0 || !strings.Contains(r.stderr, badKey) {
		t.Errorf("storage export: exit %d, stderr %q; want success naming the damaged record %s", r.code, r.stderr, badKey)
	} else if r := ck(t, 30*time.Second, "storage", "import", "--storage", t.TempDir(), archive); r.code != 0 {
		t.Errorf("storage import of the exported archive: exit %d\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "storage", "migrate", "--from", storageDir, "--to", t.TempDir()); r.code != 0 || !strings.Contains(r.stderr, badKey) {
		t.Errorf("storage migrate: exit %d, stderr %q; want success naming the damaged record %s", r.code, r.stderr, badKey)
	}

	port := testsvc.FreePort(t)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	back := newBackend(t, "hello")
	p := startProxyLogged(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--ca", "local",
		"--allow", "bad.test", "--allow", "good.test", "--backend", back.url, "--storage", storageDir,
		"--metrics-addr", metricsAddr)
	handshake := func(name string) (*x509.Certificate, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{ServerName: name, RootCAs: roots})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	if leaf, err := handshake("bad.test"); err != nil {
		t.Errorf("handshake for bad.test, whose record names nothing: %v (want a new certificate)", err)
	} else if err := leaf.VerifyHostname("bad.test"); err != nil {
		t.Errorf("bad.test served %v: %v", leaf.DNSNames, err)
	}
	leaf, err := handshake("good.test")
	if err != nil {
		t.Fatalf("handshake for good.test after one for bad.test: %v\nproxy output:\n%s", err, p.output())
	}
	if err := leaf.VerifyHostname("good.test"); err != nil {
		t.Errorf("good.test served %v: %v", leaf.DNSNames, err)
	}
	if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the proxy is gone: %v\n%s", err, p.output())
	}
	fams := scrape(t, "http://"+metricsAddr+"/metrics")
	if _, ok := metricValue(fams, "certkeeper_certificate_expiry_seconds", map[string]string{"name": "good.test"}); !ok {
		t.Errorf("/metrics has no expiry for good.test")
	}
	if out := p.output(); !strings.Contains(out, badKey) || strings.Contains(out, "panic") {
		t.Errorf("the proxy's output does not name %s, or shows a panic:\n%s", badKey, out)
	}
}
