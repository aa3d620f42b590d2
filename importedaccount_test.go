package certkeeper_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewFromImportedAccount: a certificate ordered by another account
// that storage holds at the same CA (lego's, imported beside certbot's
// account, which the proxy uses) is renewed from that account, so the CA
// accepts the ARI replacement (trial 29: it was ordered from the
// Manager's own account, the CA refused the replacement, "requester
// account did not request the certificate being replaced", and the
// renewal was ordered plainly, without the replacement's exemption).
func TestRenewFromImportedAccount(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{AlwaysValid: true, Profiles: map[string]testca.Profile{
		"default": {Description: "30 seconds", ValidityPeriod: 30 * time.Second},
	}})
	dir := t.TempDir()
	node := func(email string) *certkeeper.Manager {
		m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: filestore.New(dir), Email: email,
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Email: email,
				Solvers: map[string]solver.Solver{acmeca.HTTP01: &http01.Solver{}}}}}
		t.Cleanup(func() { m.Close() })
		return m
	}
	other := node("lego@a.test")
	if err := other.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	other.Close()
	key, err := storage.CertificateKey(storage.IssuerID(ca.DirectoryURL()), "a.test")
	if err != nil {
		t.Fatal(err)
	}
	record := func() *storage.Certificate {
		data, err := filestore.New(dir).Load(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := storage.UnmarshalCertificate(key, data)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	first := record()

	m := node("") // its own account has no contact: another one
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(45*time.Second, func() bool { return record().URL != first.URL }) {
		t.Fatal("a.test was not renewed within 45 s")
	}
	if got := record(); got.Account != first.Account || got.Email != "lego@a.test" {
		t.Errorf("renewed from account %s (email %q), want %s (lego@a.test), the one that ordered it", got.Account, got.Email, first.Account)
	}
	if n := ca.Replacements(); n != 1 {
		t.Errorf("the CA accepted %d ARI replacements, want 1", n)
	}
	if n := ca.Accounts(); n != 1 {
		t.Errorf("%d accounts registered, want 1: the Manager's own is not needed to renew", n)
	}
}
