package migrate

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"github.com/certkeeper/certkeeper"
	"io/fs"
	"math/big"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
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
	local := &localca.CA{Storage: mapStore{}}
	got, err := certkeeper.Issue(t.Context(), mapStore{}, certkeeper.IssueRequest{
		Names: []string{"www.a.test", "a.test"}, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{local}}})
	if err != nil {
		t.Fatal(err)
	}
	c, keyPEM := got.Certificate, got.Record.KeyPEM
	acctKey, _ := issuer.ECDSAP256.Generate()
	acctPEM, _ := storage.MarshalPrivateKeyPEM(acctKey)
	root, err := local.Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s := &State{roots: x509.NewCertPool()}
	s.roots.AddCert(root)
	s.addAccount(Account{DirectoryURL: dirURL, Email: "Me@A.test", Location: location, Source: "acct"}, acctPEM, "acct.key")
	s.addCertificate(Certificate{DirectoryURL: dirURL, ChainPEM: c.ChainPEM, Email: "me@a.test", Account: location, Source: "cert"}, "a.test", keyPEM, "cert.pem", "key.pem")
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
			dry, err := Import(t.Context(), st, s, ImportOptions{DryRun: true})
			if err != nil || results(dry) != "account:would import certificate:would import entry:skipped" {
				t.Fatalf("dry run = %s, %v", results(dry), err)
			}
			if keys, _ := st.List(t.Context(), ""); len(keys) != 0 {
				t.Fatalf("a dry run stored %v", keys)
			}
			acts, err := Import(t.Context(), st, s, ImportOptions{})
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
			again, err := Import(t.Context(), st, s, ImportOptions{})
			if err != nil || results(again) != "account:unchanged certificate:unchanged entry:skipped" {
				t.Errorf("second Import = %s, %v", results(again), err)
			}
			other := fixture(t, dirURL, "https://ca.test:14000/acct/2")
			acts, err = Import(t.Context(), st, other, ImportOptions{})
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
	if _, err := Import(t.Context(), st, newer, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	acts, err := Import(t.Context(), st, old, ImportOptions{})
	if err != nil || acts[1].Result != Kept || !strings.Contains(acts[1].Why, "valid as long or longer") {
		t.Errorf("older certificate: %+v, %v", acts[1], err)
	}
}

// TestImportExpired: an expired certificate is skipped with why; but when
// storage holds a valid one for its names (certkeeper renewed what an
// earlier import brought in, and the import runs again: trial 29, exit
// status 1 for nothing lost) it is kept, which is not a failure.
func TestImportExpired(t *testing.T) {
	s := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	st := filestore.New(t.TempDir())
	valid := s.Certificates[0].Leaf.NotAfter
	s.Certificates[0].Leaf.NotAfter = time.Now().Add(-time.Hour)
	acts, err := Import(t.Context(), st, s, ImportOptions{})
	if err != nil || acts[1].Result != Skipped || !strings.Contains(acts[1].Why, "expired") {
		t.Errorf("expired certificate: %+v, %v", acts[1], err)
	}
	s.Certificates[0].Leaf.NotAfter = valid
	if _, err := Import(t.Context(), st, s, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Certificates[0].Leaf.NotAfter = time.Now().Add(-time.Hour)
	acts, err = Import(t.Context(), st, s, ImportOptions{})
	if err != nil || acts[1].Result != Kept || !strings.Contains(acts[1].Why, "storage holds a valid certificate for its names") {
		t.Errorf("expired certificate, a valid one stored: %+v, %v", acts[1], err)
	}
}

// TestImportVerifiesChain (security): a certificate that does not chain to
// a trusted root (a self-signed one, or one from a CA that is not in
// Options.Roots) is a Problem naming its file, never imported.
func TestImportVerifiesChain(t *testing.T) {
	key, _ := issuer.ECDSAP256.Generate()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.test"}, DNSNames: []string{"a.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(20000 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := storage.MarshalPrivateKeyPEM(key)
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	trusted := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	for name, roots := range map[string]*x509.CertPool{"system roots": nil, "another CA's root": trusted.roots} {
		s := &State{roots: roots}
		s.addCertificate(Certificate{DirectoryURL: "https://ca.test/dir", ChainPEM: chain, Source: "a.test_ecc"}, "a.test", keyPEM, "a.test_ecc/a.test.cer", "a.test_ecc/a.test.key")
		if len(s.Certificates) != 0 || len(s.Problems) != 1 ||
			!strings.Contains(s.Problems[0].Err.Error(), "a.test_ecc/a.test.cer: the certificate does not verify") {
			t.Errorf("self-signed certificate, %s: certificates %d, problems %v", name, len(s.Certificates), s.Problems)
		}
	}
	// The fixture's own chain, against the system roots only.
	c := trusted.Certificates[0]
	s := &State{}
	s.addCertificate(Certificate{DirectoryURL: "https://ca.test/dir", ChainPEM: c.ChainPEM, Source: "cert"}, "a.test", c.KeyPEM, "cert.pem", "key.pem")
	if len(s.Certificates) != 0 || len(s.Problems) != 1 {
		t.Errorf("a chain to a root that is not trusted: certificates %d, problems %v", len(s.Certificates), s.Problems)
	}
}

// TestImportOverwrite: a certificate stored for the name is kept, however
// much longer the imported one is valid, unless Overwrite; a dry run with
// Overwrite says what would be replaced and stores nothing.
func TestImportOverwrite(t *testing.T) {
	st := filestore.New(t.TempDir())
	first := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	second := fixture(t, "https://ca.test/dir", "https://ca.test/acct/1")
	second.Accounts = first.Accounts
	second.Certificates[0].Leaf.NotAfter = first.Certificates[0].Leaf.NotAfter.Add(time.Hour)
	if _, err := Import(t.Context(), st, first, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	key := first.Certificates[0].Names[0]
	stored := func() []byte {
		k, _ := storage.CertificateKey(storage.IssuerID("https://ca.test/dir"), key)
		data, err := st.Load(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := storage.UnmarshalCertificate(k, data)
		return rec.ChainPEM
	}
	for _, tt := range []struct {
		name       string
		opts       ImportOptions
		result     string
		why        string
		replacedBy *State
	}{
		{"default", ImportOptions{}, Kept, "--overwrite replaces it", first},
		{"dry run", ImportOptions{DryRun: true, Overwrite: true}, WouldReplace, "replaces the certificate at certificates/", first},
		{"overwrite", ImportOptions{Overwrite: true}, Replaced, "replaces the certificate at certificates/", second},
	} {
		acts, err := Import(t.Context(), st, second, tt.opts)
		if err != nil || acts[1].Result != tt.result || !strings.Contains(acts[1].Why, tt.why) {
			t.Errorf("%s: %+v, %v; want %s, why containing %q", tt.name, acts[1], err, tt.result, tt.why)
		}
		if got := stored(); string(got) != string(tt.replacedBy.Certificates[0].ChainPEM) {
			t.Errorf("%s: storage holds the wrong certificate afterwards", tt.name)
		}
	}
}

// TestParseJWKOversized (security): key material longer than its curve
// or than any RSA key certkeeper uses is an error that says so, not a
// panic (FillBytes) or minutes of arithmetic.
func TestParseJWKOversized(t *testing.T) {
	long := func(n int) string { return base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0x7f}, n)) }
	for _, tt := range []struct{ name, jwk, want string }{
		{"P-256 d of 40 bytes", `{"kty":"EC","crv":"P-256","d":"` + long(40) + `"}`, `"d" is 40 bytes, more than the 32 of curve P-256`},
		{"P-521 d of 67 bytes", `{"kty":"EC","crv":"P-521","d":"` + long(67) + `"}`, `"d" is 67 bytes, more than the 66 of curve P-521`},
		{"RSA n of 20000 bits", `{"kty":"RSA","n":"` + long(2500) + `","e":"AQAB","d":"` + long(2500) + `","p":"` + long(1250) + `","q":"` + long(1250) + `"}`,
			`"n" is 2500 bytes`},
	} {
		_, err := parseJWK([]byte(tt.jwk))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: parseJWK = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestReadFileRefuses: readFile reads only regular files of at most 1 MiB
// (a FIFO, a device or a directory is refused without being opened for
// reading, whatever fs.FS it comes from).
func TestReadFileRefuses(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.pem":   {Data: []byte("x")},
		"empty":    {Data: []byte(" \n")},
		"fifo":     {Mode: fs.ModeNamedPipe},
		"zero":     {Mode: fs.ModeDevice | fs.ModeCharDevice},
		"dir/a":    {Data: []byte("a")},
		"big.pem":  {Data: bytes.Repeat([]byte{'a'}, maxFileSize+1)},
		"full.pem": {Data: bytes.Repeat([]byte{'a'}, maxFileSize)},
	}
	for name, want := range map[string]string{
		"ok.pem": "", "full.pem": "", "empty": "empty", "fifo": "named pipe", "zero": "character device",
		"dir": "directory", "big.pem": "1 MiB", "absent": "not exist",
	} {
		_, err := readFile(fsys, name)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), name)) {
			t.Errorf("readFile(%q) = %v, want an error naming it and containing %q", name, err, want)
		}
	}
	if data, err := readFileIfExists(fsys, "absent"); data != nil || err != nil {
		t.Errorf("readFileIfExists(absent) = %q, %v; want nothing", data, err)
	}
}

// TestInsideAndCADir: a path certbot records is inside its directory only
// below it (not in a sibling whose name starts the same); an acme.sh
// directory URL names a folder under ca/ or is refused.
func TestInsideAndCADir(t *testing.T) {
	s := &State{Dir: "/etc/letsencrypt"}
	for p, want := range map[string]string{
		"/etc/letsencrypt/live/a/cert.pem":        "live/a/cert.pem",
		"/etc/letsencrypt/../letsencrypt/x.pem":   "x.pem",
		"/etc/letsencrypt-evil/live/a/cert.pem":   "",
		"/etc/letsencrypt/live/../../passwd":      "",
		"/etc/letsencrypt":                        "",
		"live/a/cert.pem":                         "",
		"/etc/letsencrypt/archive/a/privkey1.pem": "archive/a/privkey1.pem",
	} {
		if got, ok := s.inside(p); got != want || ok != (want != "") {
			t.Errorf("inside(%q) = %q, %v; want %q", p, got, ok, want)
		}
	}
	for u, want := range map[string]string{
		"https://acme-v02.api.letsencrypt.org/directory": "ca/acme-v02.api.letsencrypt.org/directory",
		"https://127.0.0.1:14000/dir":                    "ca/127.0.0.1/dir",
		"https://[::1]:14000/dir/":                       "ca/[::1]/dir",
		"https://h/../../../evil":                        "",
		"https://h/a/%2e%2e/%2e%2e/x":                    "",
		"https://../x":                                   "",
		`https://h/a\..\b`:                               "",
		"local":                                          "",
		"":                                               "",
	} {
		got, err := acmeshCADir(u)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("acmeshCADir(%q) = %q, %v; want %q", u, got, err, want)
		}
	}
}

// TestFuzzReadSeeds: FuzzRead starts from states each reader imports
// whole (an account and a certificate), so the fuzzer explores from there;
// the forged seed is refused.
func TestFuzzReadSeeds(t *testing.T) {
	s := fixture(t, "https://h/d", "https://h/acct/1")
	acctKey, err := storage.ParsePrivateKeyPEM(s.Accounts[0].KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	self := selfSigned(t, "a.test")
	c := s.Certificates[0]
	leaf, chain, _ := bytes.Cut(c.ChainPEM, []byte("-----END CERTIFICATE-----\n"))
	leaf = append(leaf, "-----END CERTIFICATE-----\n"...)
	pems := fuzzPEMs{"leaf": {leaf, self.ChainPEM}, "chain": {chain, self.ChainPEM}, "fullchain": {c.ChainPEM, self.ChainPEM},
		"key": {c.KeyPEM, self.KeyPEM}, "account": {s.Accounts[0].KeyPEM, self.KeyPEM}}
	for _, seed := range fuzzReadSeeds(t, acctKey) {
		i := int(seed.tool&0x7f) % len(Tools())
		opts := Options{Roots: s.roots}
		if seed.tool&0x80 != 0 {
			opts.DirectoryURL = "https://h:1/d"
		}
		got, err := read(Tools()[i], fuzzDir, fuzzState(fuzzLayouts[i], pems, seed.forms, seed.text), opts)
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if seed.forms != 0 {
			want = 0
		}
		if len(got.Certificates) != want || len(got.Accounts) != want {
			t.Errorf("%s seed (forms %#o): %d certificates, %d accounts, problems %v; want %d of each",
				Tools()[i], seed.forms, len(got.Certificates), len(got.Accounts), got.Problems, want)
		}
	}
}

// TestACMESHSettings: what "acme.sh --install-cert" set up (the files the
// server reads, the reload command, stored base64-encoded) and its hooks
// are reported as not carried over, with the deploy hook that does the
// same (a migration trial found them dropped silently: the server's files
// would have stopped changing after the first renewal).
func TestACMESHSettings(t *testing.T) {
	kv := parseShellVars([]byte("Le_Domain='a.test'\nLe_Webroot='/var/www/html'\n" +
		"Le_RealFullChainPath='/etc/nginx/ssl/a.pem'\nLe_RealKeyPath='/etc/nginx/ssl/a.key'\n" +
		"Le_ReloadCmd='__ACME_BASE64__START_c3lzdGVtY3RsIHJlbG9hZCBuZ2lueA==__ACME_BASE64__END_'\nLe_PreHook=''\nLe_PostHook='echo done'\n"))
	var got []string
	for _, s := range acmeshSettings("a.test_ecc/a.test.conf", kv) {
		got = append(got, s.Setting+" => "+s.Instead)
	}
	want := []string{
		"Le_RealFullChainPath = /etc/nginx/ssl/a.pem => point the server at --out-dir's files, or copy them there in the deploy hook (below)",
		"Le_RealKeyPath = /etc/nginx/ssl/a.key => point the server at --out-dir's files, or copy them there in the deploy hook (below)",
		`Le_ReloadCmd = systemctl reload nginx => cert renew --deploy-hook 'cp "$CERTKEEPER_CERT_FILE" /etc/nginx/ssl/a.pem && cp "$CERTKEEPER_KEY_FILE" /etc/nginx/ssl/a.key && systemctl reload nginx'`,
		"Le_PostHook = echo done => cert renew --post-hook 'echo done'",
		"Le_Webroot = /var/www/html => cert renew --webroot /var/www/html",
	}
	if !slices.Equal(got, want) {
		t.Errorf("acmeshSettings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := acmeshSettings("b.conf", parseShellVars([]byte("Le_Domain='b.test'\nLe_Webroot='dns_cf'\n"))); len(s) != 0 {
		t.Errorf("a dns-01 certificate without install-cert: %v, want nothing", s)
	}
}
