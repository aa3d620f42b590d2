package certkeeper_test

import (
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestIssue: Issue stores what it issued under the signing issuer (with
// the type of the key used), reuses a key it is given, and stores nothing
// for a caller's CSR.
func TestIssue(t *testing.T) {
	st := filestore.New(t.TempDir())
	chain := &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	names := []string{"issue.test", "www.issue.test"}
	got, err := certkeeper.Issue(t.Context(), st, certkeeper.IssueRequest{
		Names: names, Issuers: chain, KeyType: issuer.RSA2048, Email: "a@issue.test", Variant: "rsa",
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := st.Load(t.Context(), got.Key)
	if err != nil {
		t.Fatalf("not stored under %s: %v", got.Key, err)
	}
	rec, err := storage.UnmarshalCertificate(got.Key, data)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := storage.CertificateKeyVariant("local", "issue.test", "rsa"); got.Key != want {
		t.Errorf("stored under %s, want %s", got.Key, want)
	}
	if rec.KeyType != "rsa2048" || rec.Email != "a@issue.test" || rec.Variant != "rsa" || rec.Issuer != "local" || len(rec.Names) != 2 {
		t.Errorf("record %+v", rec)
	}

	// A renewal that keeps its key.
	key, err := rec.PrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	again, err := certkeeper.Issue(t.Context(), st, certkeeper.IssueRequest{Names: names, Issuers: chain, Key: key, Variant: "rsa"})
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Record.KeyPEM) != string(rec.KeyPEM) {
		t.Error("a given key was not reused")
	}

	// A caller's CSR: issued, nothing stored.
	csrKey, _ := issuer.ECDSAP256.Generate()
	csr, _ := issuer.NewCSR(csrKey, []string{"csr.test"})
	byCSR, err := certkeeper.Issue(t.Context(), nil, certkeeper.IssueRequest{Names: []string{"csr.test"}, Issuers: chain, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	if byCSR.Key != "" || len(byCSR.Record.KeyPEM) != 0 || byCSR.Certificate.Leaf.DNSNames[0] != "csr.test" {
		t.Errorf("CSR issuance: key %q, %d key bytes", byCSR.Key, len(byCSR.Record.KeyPEM))
	}
	if keys, _ := st.List(t.Context(), storage.CertificatePrefix("")); len(keys) != 1 {
		t.Errorf("stored keys %v, want issue.test's only (none for csr.test)", keys)
	}
}
