package certkeeper_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/status"
)

// TestStatusOfCertFile: a readable pair is reported by its names and
// state, an unreadable one as damaged, a spec without ":" is an error.
func TestStatusOfCertFile(t *testing.T) {
	dir := t.TempDir()
	cf := certkeeper.CertFile{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "c.key")}
	writeCertFile(t, cf, 365*24*time.Hour, "m.test")
	s, err := certkeeper.StatusOfCertFile(cf.Cert+":"+cf.Key, time.Now())
	if err != nil || s.State != status.Fine || s.Issuer != "file" || s.Key != "file:"+cf.Cert || len(s.Names) != 1 || s.Names[0] != "m.test" {
		t.Errorf("readable pair: %+v, %v", s, err)
	}
	if err := os.WriteFile(cf.Cert, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = certkeeper.StatusOfCertFile(cf.Cert+":"+cf.Key, time.Now())
	if err != nil || s.State != status.Damaged || s.LastError == "" || s.Key != "file:"+cf.Cert {
		t.Errorf("damaged pair: %+v, %v", s, err)
	}
	if _, err := certkeeper.StatusOfCertFile("nocolon", time.Now()); err == nil {
		t.Error("a spec without CERT:KEY parsed")
	}
}
