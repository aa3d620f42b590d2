package storage

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recordFor returns a record for names whose leaf covers leafNames (DNS
// names, wildcards or IP literals), as a CA would have issued it.
func recordFor(t testing.TB, names []string, leafNames ...string) *Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "record test"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range leafNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	return &Certificate{
		Names: names, Issuer: "local", KeyPEM: keyPEM,
		ChainPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter, Obtained: now,
	}
}

// TestUnmarshalCertificateNames: a record is accepted only with names, the
// name its storage key was built from among them, and a leaf that covers
// every one of them (as a TLS client checks: wildcards, IP addresses). A
// record that names nothing, or names what its leaf does not cover, is
// refused with an error naming the key: it must never reach the code that
// serves, renews or lists certificates by Names[0].
func TestUnmarshalCertificateNames(t *testing.T) {
	label := strings.Repeat("a", 63)
	long := label + "." + label + "." + label + "." + strings.Repeat("b", 56) + ".test" // 253 bytes: a hashed key segment
	key := func(name, variant string) string {
		t.Helper()
		k, err := CertificateKeyVariant("local", name, variant)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, tt := range []struct {
		name    string
		key     string
		names   []string
		leaf    []string
		variant string
		bad     string // "" if the record is valid; else what the error says
	}{
		{"primary name", key("a.test", ""), []string{"a.test", "www.a.test"}, []string{"a.test", "www.a.test"}, "", ""},
		{"second name", key("www.a.test", ""), []string{"a.test", "www.a.test"}, []string{"a.test", "www.a.test"}, "", ""},
		{"wildcard", key("*.w.test", ""), []string{"*.w.test", "w.test"}, []string{"*.w.test", "w.test"}, "", ""},
		{"name under a wildcard leaf", key("x.w.test", ""), []string{"x.w.test"}, []string{"*.w.test"}, "", ""},
		{"IPv4", key("192.0.2.7", ""), []string{"192.0.2.7"}, []string{"192.0.2.7"}, "", ""},
		{"IPv6", key("2001:db8::1", ""), []string{"2001:db8::1"}, []string{"2001:db8::1"}, "", ""},
		{"long name", key(long, ""), []string{long}, []string{long}, "", ""},
		{"variant", key("a.test", "rsa"), []string{"a.test"}, []string{"a.test"}, "rsa", ""},

		{"no names", key("a.test", ""), []string{}, []string{"a.test"}, "", "no names"},
		{"null names", key("a.test", ""), nil, []string{"a.test"}, "", "no names"},
		{"empty name", key("a.test", ""), []string{"a.test", ""}, []string{"a.test"}, "", "is not a host name"},
		// A leaf made to carry anything as a SAN covers it (VerifyHostname
		// matches a SAN that is no host name exactly): a planted name that
		// would break out of certdeploy's nginx map (a security trial ran
		// code as root through it) is refused as no host name.
		{"name that is no host name", key("b.test", ""), []string{"b.test", "x ';\n}\ninit_by_lua_block {}"}, []string{"b.test", "x ';\n}\ninit_by_lua_block {}"}, "", "is not a host name"},
		{"name not normalised", key("b.test", ""), []string{"b.test", "C.test"}, []string{"b.test", "C.test"}, "", "is not a host name"},
		{"escape sequence", key("b.test", ""), []string{"b.test", "\x1b[2Jfake"}, []string{"b.test", "\x1b[2Jfake"}, "", "is not a host name"},
		{"key of another name", key("b.test", ""), []string{"a.test"}, []string{"a.test", "b.test"}, "", "not among"},
		{"key of another variant", key("a.test", "rsa"), []string{"a.test"}, []string{"a.test"}, "", "not among"},
		{"not a certificate key", "accounts/local/a.test.json", []string{"a.test"}, []string{"a.test"}, "", "not among"},
		{"leaf lacks a name", key("a.test", ""), []string{"a.test", "evil.test"}, []string{"a.test"}, "", `does not cover "evil.test"`},
		{"leaf lacks the key's name", key("evil.test", ""), []string{"evil.test"}, []string{"a.test"}, "", `does not cover "evil.test"`},
		{"two labels under a wildcard", key("x.y.w.test", ""), []string{"x.y.w.test"}, []string{"*.w.test"}, "", "does not cover"},
		{"wildcard name, plain leaf", key("*.w.test", ""), []string{"*.w.test"}, []string{"x.w.test"}, "", "does not cover"},
		{"other IP", key("192.0.2.8", ""), []string{"192.0.2.8"}, []string{"192.0.2.7"}, "", "does not cover"},
		{"IP name, DNS leaf", key("192.0.2.7", ""), []string{"192.0.2.7"}, []string{"192.0.2.7.nip.test"}, "", "does not cover"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := recordFor(t, tt.names, tt.leaf...)
			rec.Variant = tt.variant
			data, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalCertificate(tt.key, data)
			if tt.bad == "" {
				if err != nil {
					t.Fatalf("UnmarshalCertificate(%q, record for %q) = %v, want it accepted", tt.key, tt.names, err)
				}
				if len(got.Names) == 0 {
					t.Fatalf("UnmarshalCertificate(%q) accepted a record without names", tt.key)
				}
				return
			}
			if err == nil {
				t.Fatalf("UnmarshalCertificate(%q, record for %q, leaf for %q) = nil error, want one saying %q",
					tt.key, tt.names, tt.leaf, tt.bad)
			}
			if !strings.Contains(err.Error(), tt.bad) || !strings.Contains(err.Error(), tt.key) || !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("UnmarshalCertificate(%q) error = %q, want ErrInvalidRecord naming the key and saying %q", tt.key, err, tt.bad)
			}
		})
	}
}

// FuzzUnmarshalCertificate feeds the record decoder what anyone who can
// write storage could store. It must never panic, and whatever it accepts
// must hold what readers rely on: a name, the key's name among the names,
// a leaf covering them all, a usable key pair, and a value that encodes
// and decodes again to the same record.
//
// Inputs stay small so the fuzzer's minimisation of each new input takes
// milliseconds, not seconds: the placeholders $C1..$C3 and $K1..$K3 in an
// input stand for the base64 chains and keys of three real records (for
// a.test and www.a.test; *.w.test and w.test; 2001:db8::1 and
// 192.0.2.7). The PEM and X.509 parsers themselves are fuzzed upstream;
// what is explored here is the record around them.
func FuzzUnmarshalCertificate(f *testing.F) {
	var expand []string
	for i, leaf := range [][]string{{"a.test", "www.a.test"}, {"*.w.test", "w.test"}, {"2001:db8::1", "192.0.2.7"}} {
		rec := recordFor(f, leaf, leaf...)
		n := strconv.Itoa(i + 1)
		expand = append(expand, "$C"+n, base64.StdEncoding.EncodeToString(rec.ChainPEM),
			"$K"+n, base64.StdEncoding.EncodeToString(rec.KeyPEM))
	}
	placeholders := strings.NewReplacer(expand...)
	key := func(name, variant string) string {
		k, err := CertificateKeyVariant("local", name, variant)
		if err != nil {
			f.Fatal(err)
		}
		return k
	}
	record := func(names, chain, variant string) []byte {
		return []byte(`{"names":` + names + `,"issuer":"local","chain_pem":"$C` + chain + `","key_pem":"$K` + chain +
			`","variant":"` + variant + `","not_after":"2030-01-01T00:00:00Z"}`)
	}
	valid := record(`["a.test","www.a.test"]`, "1", "")
	if _, err := UnmarshalCertificate(key("a.test", ""), []byte(placeholders.Replace(string(valid)))); err != nil {
		f.Fatalf("the valid seed does not decode: %v", err) // the fuzzer would explore nothing past it
	}
	f.Add(key("a.test", ""), valid)
	f.Add(key("www.a.test", ""), record(`["a.test","www.a.test"]`, "1", ""))
	f.Add(key("*.w.test", ""), record(`["*.w.test","w.test"]`, "2", ""))
	f.Add(key("x.w.test", ""), record(`["x.w.test"]`, "2", ""))
	f.Add(key("2001:db8::1", ""), record(`["2001:db8::1","192.0.2.7"]`, "3", ""))
	f.Add(key("a.test", "rsa"), record(`["a.test"]`, "1", "rsa"))
	f.Add(key("a.test", ""), record(`[]`, "1", ""))
	f.Add(key("b.test", ""), record(`["a.test"]`, "1", ""))
	f.Add(key("a.test", ""), []byte(`{"names":["a.test"],"chain_pem":"$C1","key_pem":"$K2"}`))
	f.Add("certificates/local/a.test.json", []byte(`{"names":["a.test"],"chain_pem":"","key_pem":""}`))
	f.Add("", []byte("null"))
	f.Fuzz(func(t *testing.T, key string, input []byte) {
		data := []byte(placeholders.Replace(string(input)))
		c, err := UnmarshalCertificate(key, data)
		if err != nil {
			if c != nil || !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("UnmarshalCertificate(%q) = %v, %v; want nil and an ErrInvalidRecord", key, c, err)
			}
			return
		}
		if len(c.Names) == 0 {
			t.Fatalf("UnmarshalCertificate(%q) accepted a record without names", key)
		}
		tc, err := c.TLSCertificate()
		if err != nil {
			t.Fatalf("accepted record's TLSCertificate: %v", err)
		}
		for _, n := range c.Names {
			if err := tc.Leaf.VerifyHostname(n); err != nil {
				t.Fatalf("accepted record for %q under %q: %v", c.Names, key, err)
			}
		}
		own := false
		if segs := strings.Split(key, "/"); len(segs) == 3 {
			for _, n := range c.Names {
				if k, err := CertificateKeyVariant(segs[1], n, c.Variant); err == nil && k == key {
					own = true
				}
			}
		}
		if !own {
			t.Fatalf("accepted record for %q (variant %q) under %q, the key of none of its names", c.Names, c.Variant, key)
		}
		again, err := MarshalCertificate(c)
		if err != nil {
			t.Fatalf("MarshalCertificate of an accepted record: %v", err)
		}
		c2, err := UnmarshalCertificate(key, again)
		if err != nil || !slices.Equal(c2.Names, c.Names) || !bytes.Equal(c2.KeyPEM, c.KeyPEM) || !bytes.Equal(c2.ChainPEM, c.ChainPEM) {
			t.Fatalf("an accepted record does not survive encoding again: %v", err)
		}
	})
}
