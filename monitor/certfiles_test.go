package monitor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// writePair writes a self-signed certificate for names, valid for 90
// days until left from now, and its key, and returns them as a CertFile.
func writePair(t *testing.T, dir, base string, left time.Duration, names ...string) certkeeper.CertFile {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(left - 90*24*time.Hour), NotAfter: time.Now().Add(left),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	cf := certkeeper.CertFile{Cert: filepath.Join(dir, base+".pem"), Key: filepath.Join(dir, base+".key")}
	if err := os.WriteFile(cf.Key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cf.Cert, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	return cf
}

// TestCertFilesShown: the certificates a Manager serves from CertFiles
// are on the running status page, in /status.json (as "certkeeper
// status --cert-file" lists them), in the expiry metrics (issuer
// "file"; one with 5 days left counts as expiring) and in the alerts.
func TestCertFilesShown(t *testing.T) {
	dir := t.TempDir()
	bought := writePair(t, dir, "bought", 60*24*time.Hour, "bought.test", "www.bought.test")
	soon := writePair(t, dir, "soon", 5*24*time.Hour, "soon.test")
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	statusLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	alerts := make(chan alert.Alert, 10)
	a := &alert.Alerter{Exec: func(_ context.Context, al alert.Alert, _ []byte) error { alerts <- al; return nil }}
	mon := New(Config{MetricsAddr: metricsLn.Addr().String(), StatusAddr: statusLn.Addr().String(), Alerter: a,
		Listen: func(name, _ string) (net.Listener, error) {
			if name == "metrics" {
				return metricsLn, nil
			}
			return statusLn, nil
		}})
	st := filestore.New(t.TempDir())
	scanned := make(chan struct{})
	m := &certkeeper.Manager{Storage: mon.Storage(st), OnEvent: mon.Observe, CertFiles: []certkeeper.CertFile{bought, soon},
		Logger: slog.New(&signalHandler{msg: "renewal schedule rebuilt from storage", ch: scanned})}
	defer m.Close()
	_ = m.HTTPHandler(nil) // the Manager's first use: it loads CertFiles and starts its scan
	select {
	case <-scanned:
	case <-time.After(10 * time.Second):
		t.Fatal("the Manager's storage scan did not end in 10 s")
	}
	if err := mon.Start(m, st); err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	get := func(addr, path string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}

	var certs []status.Cert
	if err := json.Unmarshal([]byte(get(statusLn.Addr().String(), "/status.json")), &certs); err != nil {
		t.Fatal(err)
	}
	want := map[string]status.Cert{}
	for _, spec := range []string{bought.Cert + ":" + bought.Key, soon.Cert + ":" + soon.Key} {
		c, err := certkeeper.StatusOfCertFile(spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want[c.Key] = c
	}
	if len(certs) != 2 {
		t.Fatalf("/status.json lists %d entries, want the 2 certificate files: %+v", len(certs), certs)
	}
	for _, c := range certs {
		w := want[c.Key]
		if c.Issuer != "file" || c.State != w.State || !c.NotAfter.Equal(w.NotAfter) || !c.NotBefore.Equal(w.NotBefore) ||
			strings.Join(c.Names, ",") != strings.Join(w.Names, ",") {
			t.Errorf("/status.json entry %+v, want it as certkeeper status --cert-file reads it: %+v", c, w)
		}
	}
	if s := want["file:"+soon.Cert].State; s != status.Expiring {
		t.Errorf("a certificate file with 5 days left is %q, want expiring", s)
	}

	page := get(statusLn.Addr().String(), "/")
	for _, s := range []string{"bought.test", "www.bought.test", "soon.test", "expiring"} {
		if !strings.Contains(page, s) {
			t.Errorf("the status page does not show %q", s)
		}
	}

	metrics := get(metricsLn.Addr().String(), "/metrics")
	for _, line := range []string{
		"certkeeper_certificates_expiring 1",
		"certkeeper_certificates_expiry_seconds_count 2",
		`certkeeper_certificate_expiry_seconds{issuer="file",name="bought.test"}`,
		`certkeeper_certificate_expiry_seconds{issuer="file",name="soon.test"}`,
		"certkeeper_certificates_min_expiry_seconds 4",
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("/metrics has no %q", line)
		}
	}

	select {
	case al := <-alerts:
		if al.Reason != alert.Expiring || al.Key != "file:"+soon.Cert {
			t.Errorf("alert %+v, want soon.test's file expiring", al)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert for a certificate file 5 days from expiry within 10 s")
	}
}

// TestFileExpiringIsNotAPage: a certificate file with 20 of its 90 days
// left is expiring for status (its owner should renew it, a warning) but
// not in certkeeper_certificates_expiring, which the documented rules page
// on; with 5 days left, less than a tenth, it is in both. (A trial: a
// 10-day certificate file fired the critical rule from the day it was
// made.)
func TestFileExpiringIsNotAPage(t *testing.T) {
	dir := t.TempDir()
	owner := writePair(t, dir, "owner", 20*24*time.Hour, "owner.test")
	soon := writePair(t, dir, "soon", 5*24*time.Hour, "soon.test")
	for _, tc := range []struct {
		cf   certkeeper.CertFile
		want string
	}{{owner, "certkeeper_certificates_expiring 0"}, {soon, "certkeeper_certificates_expiring 1"}} {
		if c, err := certkeeper.StatusOfCertFile(tc.cf.Cert+":"+tc.cf.Key, time.Now()); err != nil || c.State != status.Expiring {
			t.Errorf("status of %s: %v, %v; want expiring", tc.cf.Cert, c.State, err)
		}
		st := filestore.New(t.TempDir())
		m := &certkeeper.Manager{Storage: st, CertFiles: []certkeeper.CertFile{tc.cf}}
		rec := httptest.NewRecorder()
		metrics.Handler(m).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		m.Close()
		if !strings.Contains(rec.Body.String(), "\n"+tc.want+"\n") {
			t.Errorf("metrics with %s lack %q", tc.cf.Cert, tc.want)
		}
	}
}
