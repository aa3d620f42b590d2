package renew

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

func TestIssueFiles(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	chain := &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	got, paths, err := IssueFiles(t.Context(), dir, st, certkeeper.IssueRequest{Names: []string{"a.test"}, Issuers: chain})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(paths.Key); err != nil || got.Key == "" {
		t.Errorf("key file %q: %v; stored under %q", paths.Key, err, got.Key)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "b.test"}, DNSNames: []string{"b.test"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	got, paths, err = IssueFiles(t.Context(), dir, st, certkeeper.IssueRequest{Names: []string{"b.test"}, Issuers: chain, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if paths.Key != "" || got.Key != "" {
		t.Errorf("CSR: key file %q, stored under %q; want neither", paths.Key, got.Key)
	}
	if _, err := os.Stat(paths.Cert); err != nil {
		t.Errorf("CSR: cert file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var werr *WriteError
	if _, _, err := IssueFiles(t.Context(), certfile.Dir(filepath.Join(tmp, "file")), st, certkeeper.IssueRequest{Names: []string{"c.test"}, Issuers: chain}); !errors.As(err, &werr) {
		t.Errorf("IssueFiles into a file = %v, want a *WriteError", err)
	}
}
