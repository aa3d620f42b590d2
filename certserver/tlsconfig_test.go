package certserver_test

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// writePair writes c's certificate and key as PEM files in dir.
func writePair(t *testing.T, dir string, c *tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyPEM, err := storage.MarshalPrivateKeyPEM(c.PrivateKey.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	ca := newCert(t, "client CA", true, nil)
	certFile, keyFile := writePair(t, dir, newCert(t, "api", false, nil))
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	tc, err := certserver.TLSConfig(certFile, keyFile, "")
	if err != nil || len(tc.Certificates) != 1 || tc.MinVersion != tls.VersionTLS12 || tc.ClientAuth != tls.NoClientCert {
		t.Fatalf("TLSConfig without a client CA = %+v, %v", tc, err)
	}
	tc, err = certserver.TLSConfig(certFile, keyFile, caFile)
	if err != nil || tc.ClientAuth != tls.VerifyClientCertIfGiven || tc.ClientCAs == nil {
		t.Fatalf("TLSConfig with a client CA = %+v, %v", tc, err)
	}
	var ferr *certserver.FileError
	if _, err := certserver.TLSConfig(certFile, filepath.Join(dir, "absent"), ""); !errors.As(err, &ferr) || ferr.What != "certificate" {
		t.Errorf("TLSConfig with no key file = %v, want a certificate FileError", err)
	}
	if _, err := certserver.TLSConfig(certFile, keyFile, filepath.Join(dir, "absent")); !errors.As(err, &ferr) || ferr.What != "client CA" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("TLSConfig with no client CA file = %v, want a client CA FileError", err)
	}
	if _, err := certserver.TLSConfig(certFile, keyFile, keyFile); !errors.Is(err, certserver.ErrNoPEM) {
		t.Errorf("TLSConfig with a client CA file of no certificate = %v, want ErrNoPEM", err)
	}
}

// TestReloadTokens: a token removed from the file is refused after
// ReloadTokens; a file that cannot be used keeps the tokens as they were.
func TestReloadTokens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	write := func(body string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(file, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("first-token-0123456789\nsecond-token-0123456789\n", 0o600)
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	h := &certserver.Handler{Manager: m, Audit: slog.New(slog.DiscardHandler)}
	if err := h.ReloadTokens(file); err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	srv := s.URL
	status := func(tok string) int {
		t.Helper()
		resp, _ := get(t, srv+"/v1/certificates/a.test", tok)
		return resp.StatusCode
	}
	if got := status("first-token-0123456789"); got == http.StatusUnauthorized {
		t.Fatalf("first token before the reload: %d", got)
	}
	write("second-token-0123456789\n", 0o600)
	if err := h.ReloadTokens(file); err != nil {
		t.Fatal(err)
	}
	if got := status("first-token-0123456789"); got != http.StatusUnauthorized {
		t.Errorf("removed token after the reload: %d, want 401", got)
	}
	if runtime.GOOS != "windows" {
		write("third-token-0123456789\n", 0o644)
		if err := h.ReloadTokens(file); err == nil {
			t.Error("ReloadTokens of a file others may read = nil, want an error")
		}
		if got := status("second-token-0123456789"); got == http.StatusUnauthorized {
			t.Errorf("kept token after a refused reload: %d", got)
		}
	}
}

// TestTLSFilesReload: each new connection gets what the files held at the
// last Reload; files that cannot be used keep the certificate served; a
// nil *TLSFiles (plain HTTP) has neither configuration nor files.
func TestTLSFilesReload(t *testing.T) {
	dir := t.TempDir()
	first := newCert(t, "api", false, nil)
	certFile, keyFile := writePair(t, dir, first)
	f, err := certserver.LoadTLSFiles(certFile, keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	tc := f.Config()
	served := func() []byte {
		t.Helper()
		c, err := tc.GetConfigForClient(&tls.ClientHelloInfo{})
		if err != nil || c.MinVersion != tls.VersionTLS12 {
			t.Fatalf("GetConfigForClient = %+v, %v", c, err)
		}
		return c.Certificates[0].Certificate[0]
	}
	if !bytes.Equal(served(), first.Certificate[0]) || tc.MinVersion != tls.VersionTLS12 {
		t.Fatal("the files' certificate is not served")
	}
	if changed, err := f.Reload(); changed || err != nil {
		t.Errorf("Reload of the same files = %v, %v; want false, nil", changed, err)
	}
	// A certificate written before its key: an error, the old one kept.
	second := newCert(t, "api", false, nil)
	other := t.TempDir()
	newCertFile, newKeyFile := writePair(t, other, second)
	if err := os.Rename(newCertFile, certFile); err != nil {
		t.Fatal(err)
	}
	var ferr *certserver.FileError
	if _, err := f.Reload(); !errors.As(err, &ferr) || ferr.What != "certificate" {
		t.Errorf("Reload of a certificate with another's key = %v, want a certificate FileError", err)
	}
	if !bytes.Equal(served(), first.Certificate[0]) {
		t.Error("a failed Reload changed the certificate served")
	}
	if err := os.Rename(newKeyFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if changed, err := f.Reload(); !changed || err != nil {
		t.Errorf("Reload of a new pair = %v, %v; want true, nil", changed, err)
	}
	if !bytes.Equal(served(), second.Certificate[0]) || f.Leaf().NotAfter.IsZero() {
		t.Error("the new certificate is not served after Reload")
	}
	var none *certserver.TLSFiles
	if changed, err := none.Reload(); none.Config() != nil || changed || err != nil {
		t.Errorf("a nil TLSFiles: Config %v, Reload %v, %v", none.Config(), changed, err)
	}
}
