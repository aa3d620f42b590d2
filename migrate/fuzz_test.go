package migrate

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// The fuzz targets run the readers and parsers on memory only (an
// fstest.MapFS for the tool's directory, a map for the storage): no
// temporary directories, no fsync. And their inputs stay under
// maxFuzzInput bytes: the engine minimises every input that finds new
// coverage, for up to a minute and quadratically in its length, and
// counts none of those runs. So it runs thousands of inputs a second and
// minimises what it finds in about a second, instead of a handful of
// inputs in ten seconds.

// maxFuzzInput bounds the fuzzed bytes of an input; longer ones are not
// tried.
const maxFuzzInput = 512

// fuzzDir is the directory the in-memory state stands for: certbot records
// absolute paths, which must fall inside it to be read.
const fuzzDir = "/fuzz/state"

// A fuzzSlot is one file of a tool's state. The fuzzer writes the text
// files (configurations, JSON, certbot's JWK) itself; the PEM files
// (certificates and keys, kilobytes each) come from a fixture, each in one
// of the fuzzPEM* forms the fuzzer picks. Small inputs keep the engine's
// minimisation of an interesting input (quadratic in its length) to a
// fraction of a second.
type fuzzSlot struct {
	name string
	pem  string // "" for a text file; else leaf, chain, fullchain, key or account
}

// fuzzLayouts are the files of each tool's state that FuzzRead fills, in
// the order of Tools().
var fuzzLayouts = [][]fuzzSlot{
	{{"renewal/a.test.conf", ""}, {"live/a.test/cert.pem", "leaf"}, {"live/a.test/chain.pem", "chain"},
		{"live/a.test/privkey.pem", "key"}, {"accounts/h/d/id/regr.json", ""}, {"accounts/h/d/id/private_key.json", ""}},
	{{"certificates/a.test.crt", "fullchain"}, {"certificates/a.test.key", "key"}, {"certificates/a.test.json", ""},
		{"accounts/h_1/e/account.json", ""}, {"accounts/h_1/e/keys/e.key", "account"}},
	{{"a.test/a.test.cer", "leaf"}, {"a.test/a.test.key", "key"}, {"a.test/ca.cer", "chain"}, {"a.test/a.test.conf", ""},
		{"ca/h/d/account.key", "account"}, {"ca/h/d/ca.conf", ""}, {"account.conf", ""}},
	{{"certs/a.test/cert.pem", "leaf"}, {"certs/a.test/privkey.pem", "key"}, {"certs/a.test/chain.pem", "chain"}, {"config", ""},
		{"accounts/aHR0cHM6Ly9oL2QK/account_key.pem", "account"}, {"accounts/aHR0cHM6Ly9oL2QK/account_id.json", ""},
		{"accounts/aHR0cHM6Ly9oL2QK/registration_info.json", ""}},
	{{"certificates/h/a.test/a.test.crt", "fullchain"}, {"certificates/h/a.test/a.test.key", "key"},
		{"certificates/h/a.test/a.test.json", ""}, {"acme/h/users/e/u.json", ""}, {"acme/h/users/e/u.key", "account"}},
}

// The forms of a PEM file, three bits of FuzzRead's pems each.
const (
	fuzzPEMValid     = iota // the fixture's
	fuzzPEMAbsent           // no such file
	fuzzPEMTruncated        // its first half
	fuzzPEMPipe             // a FIFO
	fuzzPEMDir              // a directory
	fuzzPEMSwapped          // a key where a certificate belongs, a certificate where a key does
	fuzzPEMUntrusted        // a self-signed certificate, or its key
	fuzzPEMEmpty            // empty
)

// fuzzPEMs are the PEM files FuzzRead lays out, by the kind of file and
// whether they are the trusted fixture's or the self-signed ones.
type fuzzPEMs map[string][2][]byte

// jwkOf returns key as the JSON Web Key certbot keeps an account key in.
func jwkOf(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("jwkOf: %T", key)
	}
	d, err := ek.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "d": base64.RawURLEncoding.EncodeToString(d)})
	return data
}

// FuzzRead runs every tool's reader, chosen by the low bits of tool (the
// high bit sets Options.DirectoryURL), on an in-memory directory: the
// text files from text (NUL-separated, in the layout's order), each PEM
// file in the form that three bits of pems choose. Whatever they hold,
// reading does not panic, every certificate it returns has a key that
// matches and a chain to the trusted root, and whatever Import stores
// reads back as a valid record.
func FuzzRead(f *testing.F) {
	s := fixture(f, "https://h/d", "https://h/acct/1")
	c, a, roots := s.Certificates[0], s.Accounts[0], s.roots
	leaf, chain, _ := bytes.Cut(c.ChainPEM, []byte("-----END CERTIFICATE-----\n"))
	leaf = append(leaf, "-----END CERTIFICATE-----\n"...)
	self := selfSigned(f, "a.test")
	pems := fuzzPEMs{
		"leaf":      {leaf, self.ChainPEM},
		"chain":     {chain, self.ChainPEM},
		"fullchain": {c.ChainPEM, self.ChainPEM},
		"key":       {c.KeyPEM, self.KeyPEM},
		"account":   {a.KeyPEM, self.KeyPEM},
	}
	acctKey, err := storage.ParsePrivateKeyPEM(a.KeyPEM)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range fuzzReadSeeds(f, acctKey) {
		f.Add(seed.tool, seed.forms, seed.text)
	}
	f.Fuzz(func(t *testing.T, tool uint8, forms uint16, text []byte) {
		if len(text) > maxFuzzInput {
			return
		}
		i := int(tool&0x7f) % len(Tools())
		opts := Options{Roots: roots}
		if tool&0x80 != 0 {
			opts.DirectoryURL = "https://h:1/d"
		}
		fsys := fuzzState(fuzzLayouts[i], pems, forms, text)
		s, err := read(Tools()[i], fuzzDir, fsys, opts)
		if err != nil {
			return
		}
		for _, c := range s.Certificates {
			tc, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM)
			if err != nil || len(c.Names) == 0 {
				t.Fatalf("read returned a certificate that does not hold together: %v", err)
			}
			if err := verifyChain(tc.Leaf, tc.Certificate[1:], roots); err != nil {
				t.Fatalf("read returned a certificate that does not verify: %v", err)
			}
		}
		st := mapStore{}
		if _, err := Import(t.Context(), st, s, ImportOptions{}); err != nil {
			t.Fatalf("Import: %v", err)
		}
		keys, _ := st.List(t.Context(), storage.CertificatePrefix(""))
		for _, k := range keys {
			data, _ := st.Load(t.Context(), k)
			if _, err := storage.UnmarshalCertificate(k, data); err != nil {
				t.Fatalf("stored %s does not read back: %v", k, err)
			}
		}
	})
}

// fuzzReadSeed is an input of FuzzRead.
type fuzzReadSeed struct {
	tool  uint8
	forms uint16
	text  []byte
}

// fuzzReadSeeds are FuzzRead's seeds: for each tool, its text files as
// the tool writes them, with the fixture's PEM files; and a forged acme.sh
// certificate.
func fuzzReadSeeds(t testing.TB, acctKey crypto.Signer) []fuzzReadSeed {
	join := func(texts ...string) []byte { return []byte(strings.Join(texts, "\x00")) }
	return []fuzzReadSeed{
		{0, 0, join("server = https://h/d\naccount = id\ncert = "+fuzzDir+"/live/a.test/cert.pem\n",
			`{"body":{"contact":["mailto:x@y"]},"uri":"https://h/acct/1"}`, string(jwkOf(t, acctKey)))},
		{1 | 0x80, 0, join(`{"domain":"a.test","certUrl":"https://h:1/c"}`, `{"email":"e","registration":{"uri":"https://h:1/acct"}}`)},
		{2, 0, join("Le_Domain='a.test'\nLe_API='https://h/d'\n", "ACCOUNT_URL='https://h/acct/1'\n", "ACCOUNT_EMAIL='x@y'\n")},
		{3, 0, join("CA=https://h/d\n", `{"url":"https://h/acct/1"}`, `{"contact":["mailto:x@y"]}`)},
		{4, 0, join(`{"issuer_data":{"ca":"https://h/d","account":"https://h/acct/1"}}`, `{"contact":["mailto:e"],"location":"https://h/acct/1"}`)},
		{2, fuzzPEMUntrusted | fuzzPEMUntrusted<<3 | fuzzPEMAbsent<<6, join("Le_Domain='a.test'\nLe_API='https://h/d'\n")},
	}
}

// fuzzState lays out a tool's state in memory: its text files from text,
// its PEM files from pems in the forms three bits of forms each choose.
func fuzzState(layout []fuzzSlot, pems fuzzPEMs, forms uint16, text []byte) fstest.MapFS {
	fsys := fstest.MapFS{}
	texts := bytes.Split(text, []byte{0})
	for _, slot := range layout {
		if slot.pem == "" {
			if len(texts) > 0 {
				fsys[slot.name] = &fstest.MapFile{Data: texts[0]}
				texts = texts[1:]
			}
			continue
		}
		form := forms & 7
		forms >>= 3
		good, untrusted := pems[slot.pem][0], pems[slot.pem][1]
		switch form {
		case fuzzPEMValid:
			fsys[slot.name] = &fstest.MapFile{Data: good}
		case fuzzPEMTruncated:
			fsys[slot.name] = &fstest.MapFile{Data: good[:len(good)/2]}
		case fuzzPEMPipe:
			fsys[slot.name] = &fstest.MapFile{Mode: fs.ModeNamedPipe}
		case fuzzPEMDir:
			fsys[slot.name+"/x"] = &fstest.MapFile{Data: good}
		case fuzzPEMSwapped:
			other := pems["leaf"][0]
			if slot.pem != "key" && slot.pem != "account" {
				other = pems["key"][0]
			}
			fsys[slot.name] = &fstest.MapFile{Data: other}
		case fuzzPEMUntrusted:
			fsys[slot.name] = &fstest.MapFile{Data: untrusted}
		case fuzzPEMEmpty:
			fsys[slot.name] = &fstest.MapFile{}
		}
	}
	return fsys
}

// selfSigned is a certificate for name signed by its own key, valid 20,000
// days, as someone forging a tool's state would make it.
func selfSigned(t testing.TB, name string) Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(20000 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	return Certificate{ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), KeyPEM: keyPEM}
}

// Formats FuzzParse dispatches on.
const (
	fuzzJWK = iota
	fuzzPEMKey
	fuzzCertbotConf
	fuzzShellVars // acme.sh's NAME.conf, ca.conf, account.conf; dehydrated's config
	fuzzCertbotRegr
	fuzzLegoAccount
	fuzzLegoCertMeta
	fuzzDehydratedAccount
	fuzzCaddyUser
	fuzzCaddyCertMeta
	fuzzFormats
)

// FuzzParse feeds arbitrary bytes to each parser of a tool's files, chosen
// by format: none panics, a key that parses is usable and round-trips,
// and what the configurations name stays inside the tool's directory
// (certbot's paths, acme.sh's account folder from Le_API).
func FuzzParse(f *testing.F) {
	s := fixture(f, "https://h/d", "https://h/acct/1")
	acctKey, err := storage.ParsePrivateKeyPEM(s.Accounts[0].KeyPEM)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(fuzzJWK), jwkOf(f, acctKey))
	f.Add(uint8(fuzzJWK), []byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ","p":"Aw","q":"BQ"}`))
	f.Add(uint8(fuzzPEMKey), s.Accounts[0].KeyPEM)
	f.Add(uint8(fuzzPEMKey), []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"))
	f.Add(uint8(fuzzCertbotConf), []byte("version = 2.1.0\narchive_dir = /fuzz/state/archive/a.test\ncert = /fuzz/state/live/a.test/cert.pem\n"+
		"privkey = /fuzz/state-evil/privkey.pem\nchain = /fuzz/state/../x\n\n[renewalparams]\naccount = 0123\nserver = https://h/d\n"))
	f.Add(uint8(fuzzShellVars), []byte("Le_Domain='a.test'\nLe_API='https://h:14000/dir'\nexport CA=\"https://h/d\"\n# c\nACCOUNT_URL='https://h/../../x'\n"))
	f.Add(uint8(fuzzCertbotRegr), []byte(`{"body":{"contact":["mailto:x@y"]},"uri":"https://h/acct/1"}`))
	f.Add(uint8(fuzzLegoAccount), []byte(`{"email":"e","registration":{"body":{"contact":["mailto:e@x"]},"uri":"https://h:1/acct"}}`))
	f.Add(uint8(fuzzLegoCertMeta), []byte(`{"domain":"a.test","certUrl":"https://h:1/c"}`))
	f.Add(uint8(fuzzDehydratedAccount), []byte("{\"url\":\"https://h/acct/1\"}\x00{\"contact\":[\"mailto:x@y\"]}"))
	f.Add(uint8(fuzzCaddyUser), []byte(`{"contact":["mailto:e"],"location":"https://h/acct/1"}`))
	f.Add(uint8(fuzzCaddyCertMeta), []byte(`{"issuer_data":{"url":"https://h/c","ca":"https://h/d","account":"https://h/acct/1"}}`))
	f.Fuzz(func(t *testing.T, format uint8, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		switch format % fuzzFormats {
		case fuzzJWK:
			key, err := parseJWK(data)
			if err == nil {
				checkKey(t, key)
			}
		case fuzzPEMKey:
			key, err := parseKey(data)
			if err == nil {
				checkKey(t, key)
			}
		case fuzzCertbotConf:
			s := &State{Dir: fuzzDir}
			for k, v := range parseCertbotConf(data) {
				if strings.ContainsAny(k+v, "\n") {
					t.Fatalf("parseCertbotConf: %q = %q spans lines", k, v)
				}
				if r, ok := s.inside(v); ok && (r == "." || !filepath.IsLocal(r)) {
					t.Fatalf("inside(%q) = %q, which is not inside %s", v, r, fuzzDir)
				}
			}
		case fuzzShellVars:
			for k, v := range parseShellVars(data) {
				if strings.ContainsAny(k+v, "\n") {
					t.Fatalf("parseShellVars: %q = %q spans lines", k, v)
				}
				if dir, err := acmeshCADir(v); err == nil && (!fs.ValidPath(dir) || !strings.HasPrefix(dir, "ca/")) {
					t.Fatalf("acmeshCADir(%q) = %q, which is not a folder under ca/", v, dir)
				}
			}
			_ = dehydratedConfigCA(data)
		case fuzzCertbotRegr:
			var regr certbotRegr
			if json.Unmarshal(data, &regr) == nil {
				_ = emailOf(regr.Body.Contact)
			}
		case fuzzLegoAccount:
			var rec legoAccount
			if json.Unmarshal(data, &rec) == nil {
				_, _ = emailOf(rec.Registration.Body.Contact), legoHost(rec.Email)
			}
		case fuzzLegoCertMeta:
			var meta legoCertMeta
			if json.Unmarshal(data, &meta) == nil {
				_ = knownDirectories[hostName(meta.CertURL)] + hostOf(meta.CertURL)
			}
		case fuzzDehydratedAccount:
			id, reg, _ := bytes.Cut(data, []byte{0})
			_, _ = parseDehydratedAccount(id, reg)
		case fuzzCaddyUser:
			var rec caddyUser
			if json.Unmarshal(data, &rec) == nil {
				_ = emailOf(rec.Contact)
			}
		case fuzzCaddyCertMeta:
			var meta caddyCertMeta
			_ = json.Unmarshal(data, &meta)
		}
	})
}

// checkKey fails t unless key stores and parses back as the same key.
func checkKey(t *testing.T, key crypto.Signer) {
	t.Helper()
	pemKey, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		t.Fatalf("a parsed key does not marshal: %v", err)
	}
	back, err := storage.ParsePrivateKeyPEM(pemKey)
	if err != nil {
		t.Fatalf("a parsed key does not parse back: %v", err)
	}
	if eq, ok := key.(interface{ Equal(crypto.PrivateKey) bool }); !ok || !eq.Equal(back) {
		t.Fatalf("a parsed key differs after a round trip")
	}
}

// mapStore keeps values in a map, so the fuzzer spends its time reading,
// not fsyncing. Single goroutine only.
type mapStore map[string][]byte

func (m mapStore) Load(_ context.Context, key string) ([]byte, error) {
	if v, ok := m[key]; ok {
		return v, nil
	}
	return nil, fs.ErrNotExist
}

func (m mapStore) Store(_ context.Context, key string, value []byte) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	m[key] = value
	return nil
}

func (m mapStore) Delete(_ context.Context, key string) error { delete(m, key); return nil }

func (m mapStore) List(_ context.Context, prefix string) ([]string, error) {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func (m mapStore) Lock(context.Context, string) (func(), error) { return func() {}, nil }
