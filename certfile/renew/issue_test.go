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
	"time"

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
	if !got.Record.Files {
		t.Error("the stored copy is not marked Files: a Manager on the same storage would renew it too")
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

// TestKept: the same names and settings before the certificate is due are
// kept, and so are other settings that do not make the certificate (how it
// is validated, its hooks); another name, a changed setting that does, a
// revocation mark, no files or a due certificate are not.
func TestKept(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	chain := &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	names := []string{"a.test", "www.a.test"}
	got, _, err := IssueFiles(t.Context(), dir, st, certkeeper.IssueRequest{Names: names, Issuers: chain})
	if err != nil {
		t.Fatal(err)
	}
	s := Settings{CA: "local", Challenge: "http-01", KeyType: "ecdsa-p256"}
	path, err := SettingsPath(dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := SaveSettings(path, s); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	notAfter, due, ok := Kept(t.Context(), dir, []string{"a.test", "www.a.test"}, s, nil, now)
	if !ok || !notAfter.Equal(got.Certificate.Leaf.NotAfter) || !due.After(now) || !due.Before(notAfter) {
		t.Errorf("Kept(same) = %v, %v, %v; want kept until a due time before %v", notAfter, due, ok, got.Certificate.Leaf.NotAfter)
	}
	other := s
	other.KeyType = "rsa2048"
	revoked := s
	revoked.Revoked = "keyCompromise"
	for what, tc := range map[string]struct {
		names []string
		s     Settings
		now   time.Time
	}{
		"a name more":     {[]string{"a.test", "www.a.test", "b.a.test"}, s, now},
		"a name less":     {[]string{"a.test"}, s, now},
		"another setting": {names, other, now},
		"due":             {names, s, due.Add(time.Second)},
		"no files":        {[]string{"b.test"}, s, now},
	} {
		if _, _, ok := Kept(t.Context(), dir, tc.names, tc.s, nil, tc.now); ok {
			t.Errorf("Kept(%s) = true", what)
		}
	}
	hooked := s
	hooked.Challenge, hooked.DeployHook = "dns-01", "systemctl reload nginx"
	if _, _, ok := Kept(t.Context(), dir, names, hooked, nil, now); !ok {
		t.Error("Kept(another challenge and a deploy hook) = false; want kept: they do not change the certificate")
	}
	if err := SaveSettings(path, revoked); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := Kept(t.Context(), dir, names, s, nil, now); ok {
		t.Error("Kept after cert revoke marked the certificate = true")
	}
}

// TestKeptKeyTypeSpellings: a key type is remembered and compared in its
// canonical spelling (trial: certbot's and lego's spellings were stored
// as given, so the canonical name given next time ordered a duplicate):
// a file of an older certkeeper that holds "secp384r1" keeps the
// certificate for settings that say "ecdsa-p384", and settings given as
// "ecdsa" keep one remembered as "ecdsa-p256". Another type is a change.
func TestKeptKeyTypeSpellings(t *testing.T) {
	tmp := t.TempDir()
	st := filestore.New(filepath.Join(tmp, "state"))
	dir := certfile.Dir(filepath.Join(tmp, "ssl"))
	chain := &issuer.Chain{Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	names := []string{"a.test"}
	if _, _, err := IssueFiles(t.Context(), dir, st, certkeeper.IssueRequest{Names: names, Issuers: chain}); err != nil {
		t.Fatal(err)
	}
	path, err := SettingsPath(dir, "a.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		stored, given string
		kept          bool
	}{
		{"secp384r1", "ecdsa-p384", true},
		{"ec384", "ecdsa-p384", true},
		{"ecdsa-p256", "ecdsa", true},
		{"ecdsa-p384", "secp384r1", true},
		{"rsa", "rsa2048", true},
		{"ecdsa", "ecdsa-p384", false},
	} {
		// Written as an older certkeeper wrote it: the spelling as given.
		if err := os.WriteFile(path, []byte("version = 1\nca = local\nkey_type = "+tc.stored+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var s Settings
		if err := errors.Join(s.Set("ca", "local"), s.Set("key_type", tc.given)); err != nil {
			t.Fatal(err)
		}
		if _, _, ok := Kept(t.Context(), dir, names, s, nil, time.Now()); ok != tc.kept {
			t.Errorf("stored %s, given %s: Kept = %v, want %v (changes: %q)", tc.stored, tc.given, ok, tc.kept, ReadPrevious(dir, "a.test").Changes(names, s))
		}
		// Built without Set (a library caller): compared canonically too.
		if _, _, ok := Kept(t.Context(), dir, names, Settings{CA: "local", KeyType: tc.given}, nil, time.Now()); ok != tc.kept {
			t.Errorf("stored %s, Settings{KeyType: %s}: Kept = %v, want %v", tc.stored, tc.given, ok, tc.kept)
		}
	}
	// What is remembered is the canonical spelling.
	var s Settings
	if err := s.Set("key_type", "ec384"); err != nil || s.KeyType != "ecdsa-p384" {
		t.Errorf("Set(key_type, ec384): KeyType %q, %v; want ecdsa-p384", s.KeyType, err)
	}
	if err := s.Set("key_type", "dsa1024"); err != nil || s.KeyType != "dsa1024" {
		t.Errorf("Set(key_type, dsa1024): KeyType %q, %v; want it kept as given, for the issuance to refuse", s.KeyType, err)
	}
}
