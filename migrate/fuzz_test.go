package migrate

import (
	"bytes"
	"context"
	"crypto/tls"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/storage"
)

// fuzzLayouts are the files of each tool's state that FuzzRead fills.
var fuzzLayouts = [][]string{
	{"renewal/a.test.conf", "live/a.test/cert.pem", "live/a.test/chain.pem", "live/a.test/privkey.pem",
		"accounts/h/d/id/regr.json", "accounts/h/d/id/private_key.json"},
	{"certificates/a.test.crt", "certificates/a.test.key", "certificates/a.test.json",
		"accounts/h_1/e/account.json", "accounts/h_1/e/keys/e.key"},
	{"a.test/a.test.cer", "a.test/a.test.key", "a.test/ca.cer", "a.test/a.test.conf",
		"ca/h/d/account.key", "ca/h/d/ca.conf", "account.conf"},
	{"certs/a.test/cert.pem", "certs/a.test/privkey.pem", "certs/a.test/chain.pem", "config",
		"accounts/aHR0cHM6Ly9oL2QK/account_key.pem", "accounts/aHR0cHM6Ly9oL2QK/account_id.json", "accounts/aHR0cHM6Ly9oL2QK/registration_info.json"},
	{"certificates/h/a.test/a.test.crt", "certificates/h/a.test/a.test.key", "certificates/h/a.test/a.test.json",
		"acme/h/users/e/u.json", "acme/h/users/e/u.key"},
}

// FuzzRead feeds arbitrary files to every tool's reader: whatever they
// hold, Read does not panic, every certificate it returns has a key that
// matches, and whatever Import stores reads back as a valid record.
func FuzzRead(f *testing.F) {
	s := fixture(f, "https://h/d", "https://h/acct/1")
	c, a := s.Certificates[0], s.Accounts[0]
	leaf, chain, _ := bytes.Cut(c.ChainPEM, []byte("-----END CERTIFICATE-----\n"))
	leaf = append(leaf, "-----END CERTIFICATE-----\n"...)
	// Seeds: the file contents of each layout, in order, separated by NUL.
	f.Add(uint8(0), bytes.Join([][]byte{[]byte("server = https://h/d\naccount = id\n"), leaf, chain, c.KeyPEM,
		[]byte(`{"body":{},"uri":"https://h/acct/1"}`), []byte(`{"kty":"EC","crv":"P-256","d":"AAAA"}`)}, []byte{0}))
	f.Add(uint8(1), bytes.Join([][]byte{c.ChainPEM, c.KeyPEM, []byte(`{"domain":"a.test","certUrl":"https://h:1/c"}`),
		[]byte(`{"email":"e","registration":{"uri":"https://h:1/acct"}}`), a.KeyPEM}, []byte{0}))
	f.Add(uint8(2), bytes.Join([][]byte{leaf, c.KeyPEM, chain, []byte("Le_Domain='a.test'\nLe_API='https://h/d'\n"),
		a.KeyPEM, []byte("ACCOUNT_URL='https://h/acct/1'\n"), []byte("ACCOUNT_EMAIL='x@y'\n")}, []byte{0}))
	f.Add(uint8(3), bytes.Join([][]byte{leaf, c.KeyPEM, chain, []byte("CA=https://h/d\n"), a.KeyPEM,
		[]byte(`{"url":"https://h/acct/1"}`), []byte(`{"contact":["mailto:x@y"]}`)}, []byte{0}))
	f.Add(uint8(4), bytes.Join([][]byte{c.ChainPEM, c.KeyPEM, []byte(`{"issuer_data":{"ca":"https://h/d","account":"https://h/acct/1"}}`),
		[]byte(`{"contact":["mailto:e"],"location":"https://h/acct/1"}`), a.KeyPEM}, []byte{0}))
	f.Fuzz(func(t *testing.T, tool uint8, contents []byte) {
		i := int(tool) % len(Tools())
		dir := t.TempDir()
		parts := bytes.Split(contents, []byte{0})
		for j, rel := range fuzzLayouts[i] {
			if j >= len(parts) {
				break
			}
			p := filepath.Join(dir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, parts[j], 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := Read(Tools()[i], dir, Options{})
		if err != nil {
			return
		}
		for _, c := range s.Certificates {
			if _, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM); err != nil || len(c.Names) == 0 {
				t.Fatalf("Read returned a certificate that does not hold together: %v", err)
			}
		}
		st := mapStore{}
		if _, err := Import(t.Context(), st, s, false); err != nil {
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
