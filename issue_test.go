package certkeeper_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
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

// TestIssuersTakeManagerEmailAndProfile: an *acmeca.Issuer in Issuers
// (a private CA's, as docs/library.md builds it) without Email or Profile
// takes the Manager's, as it takes its AgreeTerms and Storage: a library
// trial's Manager.Email and Profile were ignored without a word (an
// account with no contact; a profile the CA does not offer not refused).
// An issuer's own values are kept.
func TestIssuersTakeManagerEmailAndProfile(t *testing.T) {
	st := filestore.New(t.TempDir())
	bare := &acmeca.Issuer{DirectoryURL: "https://127.0.0.1:1/dir"}
	own := &acmeca.Issuer{DirectoryURL: "https://127.0.0.1:2/dir", Email: "ops@a.test", Profile: "tlsserver"}
	m := &certkeeper.Manager{Storage: st, Email: "mgr@a.test", Profile: "shortlived", Issuers: []issuer.Issuer{bare, own}}
	defer m.Close()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if bare.Email != "mgr@a.test" || bare.Profile != "shortlived" {
		t.Errorf("issuer without Email and Profile: %q, %q; want the Manager's mgr@a.test, shortlived", bare.Email, bare.Profile)
	}
	if own.Email != "ops@a.test" || own.Profile != "tlsserver" {
		t.Errorf("issuer with its own: %q, %q; want ops@a.test, tlsserver kept", own.Email, own.Profile)
	}
}

// TestDoneContextOrdersNothing: Cert and CertificateFor with a context
// done already return its error and order nothing (a library trial's
// cancelled Cert still spent an order at the CA).
func TestDoneContextOrdersNothing(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, policy.Allowlist("done.test"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Cert(ctx, "cert.done.test"); !errors.Is(err, context.Canceled) {
		t.Errorf("Cert with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := m.CertificateFor(ctx, "done.test", netip.Addr{}); !errors.Is(err, context.Canceled) {
		t.Errorf("CertificateFor with a cancelled context: %v, want context.Canceled", err)
	}
	// An issuance started would store its certificate within
	// milliseconds from the local CA: look for half a second.
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if keys, err := st.List(t.Context(), storage.CertificatePrefix("")); err != nil || len(keys) != 0 {
			t.Fatalf("certificates stored: %v, %v; want none", keys, err)
		}
	}
}
