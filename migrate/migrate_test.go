package migrate

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
	"github.com/redis/go-redis/v9"
)

func b64(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.Bytes()) }

// TestParseJWK: certbot's account keys, RSA and EC JSON Web Keys, parse
// to the same key; damaged ones are errors.
func TestParseJWK(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecD, _ := ek.Bytes()
	rsaJWK, _ := json.Marshal(map[string]string{"kty": "RSA", "n": b64(rk.N), "e": b64(big.NewInt(int64(rk.E))), "d": b64(rk.D),
		"p": b64(rk.Primes[0]), "q": b64(rk.Primes[1]), "dp": b64(rk.Precomputed.Dp), "dq": b64(rk.Precomputed.Dq), "qi": b64(rk.Precomputed.Qinv)})
	ecJWK, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "d": base64.RawURLEncoding.EncodeToString(ecD)})
	for _, tt := range []struct {
		name string
		data []byte
		want interface{ Equal(crypto.PrivateKey) bool }
	}{{"rsa", rsaJWK, rk}, {"ec", ecJWK, ek}} {
		got, err := parseJWK(tt.data)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if !tt.want.Equal(got) {
			t.Errorf("%s: parsed key differs", tt.name)
		}
	}
	for _, bad := range []string{`{"kty":"RSA","n":"AQAB"}`, `{"kty":"oct","k":"AA"}`, `{"kty":"EC","crv":"P-256","d":"!!"}`, `{`, string(rsaJWK[:len(rsaJWK)/2])} {
		if _, err := parseJWK([]byte(bad)); err == nil {
			t.Errorf("parseJWK(%.40q) = nil error", bad)
		}
	}
}

// fixture is a State as Read returns it: one account and one certificate
// of a CA, the certificate from certkeeper's local CA standing in for it.
func fixture(t testing.TB, dirURL, location string) *State {
	t.Helper()
	local := &localca.CA{Storage: filestore.New(t.TempDir())}
	key, _ := issuer.ECDSAP256.Generate()
	csr, _ := issuer.NewCSR(key, []string{"www.a.test", "a.test"})
	c, err := local.Issue(t.Context(), issuer.Request{Names: []string{"www.a.test", "a.test"}, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := storage.MarshalPrivateKeyPEM(key)
	acctKey, _ := issuer.ECDSAP256.Generate()
	acctPEM, _ := storage.MarshalPrivateKeyPEM(acctKey)
	s := &State{}
	s.addAccount(Account{DirectoryURL: dirURL, Email: "Me@A.test", Location: location, Source: "acct"}, acctPEM)
	s.addCertificate(Certificate{DirectoryURL: dirURL, ChainPEM: c.ChainPEM, Email: "me@a.test", Account: location, Source: "cert"}, "a.test", keyPEM)
	s.problem("broken", "private key: %s", "truncated")
	if len(s.Accounts) != 1 || len(s.Certificates) != 1 {
		t.Fatalf("fixture: %+v", s.Problems)
	}
	return s
}

func results(acts []Action) string {
	var out []string
	for _, a := range acts {
		out = append(out, a.Kind+":"+a.Result)
	}
	return strings.Join(out, " ")
}

// TestImport, on the file store and on Redis: the account is stored where
// acmeca finds it (its Account returns the imported URL, with no request
// to any CA); the certificate under the issuer's key with the primary name
// first; a second import changes nothing; a dry run stores nothing; an
// account already in storage with another URL is kept.
func TestImport(t *testing.T) {
	const dirURL = "https://ca.test:14000/dir"
	backends := map[string]func(t *testing.T) storage.Storage{
		"filestore": func(t *testing.T) storage.Storage { return filestore.New(t.TempDir()) },
		"redisstore": func(t *testing.T) storage.Storage {
			r := testsvc.Redis(t)
			c := redis.NewClient(&redis.Options{Addr: r.Addr()})
			t.Cleanup(func() { c.Close() })
			return redisstore.New(c, "import-test")
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			s := fixture(t, dirURL, "https://ca.test:14000/acct/1")
			dry, err := Import(t.Context(), st, s, true)
			if err != nil || results(dry) != "account:would import certificate:would import entry:skipped" {
				t.Fatalf("dry run = %s, %v", results(dry), err)
			}
			if keys, _ := st.List(t.Context(), ""); len(keys) != 0 {
				t.Fatalf("a dry run stored %v", keys)
			}
			acts, err := Import(t.Context(), st, s, false)
			if err != nil || results(acts) != "account:imported certificate:imported entry:skipped" {
				t.Fatalf("Import = %s, %v", results(acts), err)
			}
			if !strings.Contains(acts[2].Why, "truncated") || acts[2].Source != "broken" {
				t.Errorf("problem reported as %+v", acts[2])
			}
			iss := &acmeca.Issuer{DirectoryURL: dirURL, Email: "me@a.test", Storage: st}
			acct, err := iss.Account(t.Context())
			if err != nil || acct.Location != "https://ca.test:14000/acct/1" {
				t.Errorf("acmeca's Account after import = %q, %v; want the imported account", acct.Location, err)
			}
			key, _ := storage.CertificateKey(iss.ID(), "a.test")
			data, err := st.Load(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := storage.UnmarshalCertificate(key, data)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(rec.Names, ",") != "a.test,www.a.test" || rec.Issuer != iss.ID() || rec.Email != "me@a.test" ||
				rec.Account != acct.Location || rec.KeyType != "ecdsa-p256" {
				t.Errorf("stored record: %v, email %q, account %q, key type %q", rec, rec.Email, rec.Account, rec.KeyType)
			}
			again, err := Import(t.Context(), st, s, false)
			if err != nil || results(again) != "account:unchanged certificate:unchanged entry:skipped" {
				t.Errorf("second Import = %s, %v", results(again), err)
			}
			other := fixture(t, dirURL, "https://ca.test:14000/acct/2")
			acts, err = Import(t.Context(), st, other, false)
			if err != nil || acts[0].Result != Skipped || !strings.Contains(acts[0].Why, "another account") {
				t.Errorf("Import of another account for the same CA and email = %+v, %v", acts[0], err)
			}
			if acct, _ := (&acmeca.Issuer{DirectoryURL: dirURL, Email: "me@a.test", Storage: st}).Account(t.Context()); acct.Location != "https://ca.test:14000/acct/1" {
				t.Errorf("the stored account was replaced by %q", acct.Location)
			}
		})
	}
}

// TestImportKeepsNewer: a certificate older than the one in storage (say,
// renewed by certkeeper since the first import) leaves the stored one.
func TestImportKeepsNewer(t *testing.T) {
	st := filestore.New(t.TempDir())
	old := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	newer := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	newer.Accounts = old.Accounts
	old.Certificates[0].Leaf.NotAfter = newer.Certificates[0].Leaf.NotAfter.Add(-time.Minute)
	if _, err := Import(t.Context(), st, newer, false); err != nil {
		t.Fatal(err)
	}
	acts, err := Import(t.Context(), st, old, false)
	if err != nil || acts[1].Result != Kept || !strings.Contains(acts[1].Why, "valid as long or longer") {
		t.Errorf("older certificate: %+v, %v", acts[1], err)
	}
}

// TestImportExpired: an expired certificate is skipped with why.
func TestImportExpired(t *testing.T) {
	s := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	s.Certificates[0].Leaf.NotAfter = time.Now().Add(-time.Hour)
	acts, err := Import(t.Context(), filestore.New(t.TempDir()), s, false)
	if err != nil || acts[1].Result != Skipped || !strings.Contains(acts[1].Why, "expired") {
		t.Errorf("expired certificate: %+v, %v", acts[1], err)
	}
}
