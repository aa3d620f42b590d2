package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

const le = "acme-v02.api.letsencrypt.org-directory"

func TestCertificateKey(t *testing.T) {
	for _, tt := range []struct {
		name, issuer, host string
		want               string // "" means an error wrapping ErrInvalidKey
	}{
		{"hostname", le, "a.test", "certificates/" + le + "/a.test.json"},
		{"wildcard", le, "*.a.test", "certificates/" + le + "/wildcard_a.test.json"},
		{"IPv4", "localca", "192.0.2.1", "certificates/localca/192.0.2.1.json"},
		{"IPv6", "localca", "2001:db8::1", "certificates/localca/2001_db8__1.json"},
		{"punycode", le, "xn--bcher-kva.test", "certificates/" + le + "/xn--bcher-kva.test.json"},
		{"max length", le, strings.Repeat("a.", 126) + "b", "certificates/" + le + "/" + strings.Repeat("a.", 91) + "a_9182ce025581dbbe.json"},
		{"at the segment limit", le, strings.Repeat("a.", 99) + "bb", "certificates/" + le + "/" + strings.Repeat("a.", 99) + "bb.json"},
		{"empty name", le, "", ""},
		{"upper case", le, "A.test", ""},
		{"unicode", le, "bücher.test", ""},
		{"dot dot", le, "a..test", ""},
		{"parent", le, "..", ""},
		{"leading dot", le, ".a.test", ""},
		{"trailing dot", le, "a.test.", ""},
		{"slash", le, "a/b", ""},
		{"backslash", le, `a\b`, ""},
		{"NUL", le, "a\x00b", ""},
		{"bare wildcard", le, "*.", ""},
		{"inner wildcard", le, "a.*.test", ""},
		{"too long", le, strings.Repeat("a", 254), ""},
		{"empty issuer", "", "a.test", ""},
		{"issuer with slash", "a/b", "a.test", ""},
		{"issuer dot dot", "..", "a.test", ""},
		{"issuer leading dot", ".x", "a.test", ""},
		{"issuer colon", "a:b", "a.test", ""},
		{"issuer newline", "a\nb", "a.test", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CertificateKey(tt.issuer, tt.host)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("CertificateKey(%q, %q) = %q, %v; want ErrInvalidKey", tt.issuer, tt.host, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CertificateKey(%q, %q) = %q, %v; want %q", tt.issuer, tt.host, got, err, tt.want)
			}
			if err := ValidateKey(got); err != nil {
				t.Errorf("ValidateKey(%q) = %v", got, err)
			}
			if !strings.HasPrefix(got, CertificatePrefix(tt.issuer)) || !strings.HasPrefix(got, CertificatePrefix("")) {
				t.Errorf("CertificateKey(%q, %q) = %q is not under CertificatePrefix", tt.issuer, tt.host, got)
			}
		})
	}
}

func TestAccountKeys(t *testing.T) {
	for _, tt := range []struct {
		name, issuer, email string
		want                string // without extension; "" means ErrInvalidKey
	}{
		{"no email", le, "", "accounts/" + le + "/default"},
		{"email", le, "ops@a.test", "accounts/" + le + "/ops@a.test"},
		{"lower cased", le, "Ops@A.Test", "accounts/" + le + "/ops@a.test"},
		{"plus", le, "ops+certs@a.test", "accounts/" + le + "/ops+certs@a.test"},
		{"slash", le, "a/b@a.test", ""},
		{"backslash", le, `a\b@a.test`, ""},
		{"dot dot", le, "../x", ""},
		{"leading dot", le, ".x@a.test", ""},
		{"trailing dot", le, "x@a.test.", ""},
		{"newline", le, "x@a.test\n", ""},
		{"colon", le, "x:y@a.test", ""},
		{"empty issuer", "", "ops@a.test", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := AccountKey(tt.issuer, tt.email)
			priv, perr := AccountPrivateKey(tt.issuer, tt.email)
			if tt.want == "" {
				if !errors.Is(err, ErrInvalidKey) || !errors.Is(perr, ErrInvalidKey) {
					t.Fatalf("AccountKey, AccountPrivateKey(%q, %q) = %q, %v; %q, %v; want ErrInvalidKey",
						tt.issuer, tt.email, rec, err, priv, perr)
				}
				return
			}
			if err != nil || rec != tt.want+".json" {
				t.Errorf("AccountKey(%q, %q) = %q, %v; want %q", tt.issuer, tt.email, rec, err, tt.want+".json")
			}
			if perr != nil || priv != tt.want+".key" {
				t.Errorf("AccountPrivateKey(%q, %q) = %q, %v; want %q", tt.issuer, tt.email, priv, perr, tt.want+".key")
			}
			for _, k := range []string{rec, priv} {
				if err := ValidateKey(k); err != nil {
					t.Errorf("ValidateKey(%q) = %v", k, err)
				}
			}
		})
	}
}

func TestFixedKeysAndLocks(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{LocalCAKey("root"), "localca/root.json"},
		{LocalCAKey("intermediate"), "localca/intermediate.json"},
		{IssueLock("a.test"), "issue/a.test"},
		{IssueLock("*.a.test"), "issue/*.a.test"},
		{AccountLock(le), "account/" + le},
		{CertificatePrefix(""), "certificates/"},
		{CertificatePrefix(le), "certificates/" + le + "/"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
		if err := ValidatePrefix(tt.got); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", tt.got, err)
		}
	}
}

func TestIssuerID(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"https://acme-v02.api.letsencrypt.org/directory", le},
		{"https://acme-staging-v02.api.letsencrypt.org/directory", "acme-staging-v02.api.letsencrypt.org-directory"},
		{"https://localhost:14000/dir", "localhost-14000-dir"},
		{"https://127.0.0.1:14000/dir/", "127.0.0.1-14000-dir"},
		{"https://[::1]:14000/dir", "---1--14000-dir"},
		{"HTTPS://CA.Example/ACME/Directory", "ca.example-acme-directory"},
		{"https://ca.example./", "ca.example-"},
		{"https://ca.example/a/../b", "ca.example-a----b"},
		{"localca", "localca"},
		{".hidden", "-hidden"},
		{"a..b", "a--b"},
		{"a...b", "a--.b"},
		{"", "unknown"},
		{"/", "unknown"},
		{"ü", "--"},
	} {
		got := IssuerID(tt.url)
		if got != tt.want {
			t.Errorf("IssuerID(%q) = %q, want %q", tt.url, got, tt.want)
		}
		if err := checkSegment("issuer ID", got); err != nil {
			t.Errorf("IssuerID(%q) = %q, not a key segment: %v", tt.url, got, err)
		}
	}
	if a, b := IssuerID("https://ca.example/dir"), IssuerID("https://ca.example/dir"); a != b {
		t.Errorf("IssuerID is not stable: %q, %q", a, b)
	}
}

// checkAccepted checks the properties every key a builder returns must
// have, whatever it was built from.
func checkAccepted(t *testing.T, what, key string) {
	t.Helper()
	if err := ValidateKey(key); err != nil {
		t.Fatalf("%s = %q, which ValidateKey refuses: %v", what, key, err)
	}
	if strings.Contains(key, "..") || strings.ContainsAny(key, "\\\x00") || strings.HasPrefix(key, "/") {
		t.Fatalf("%s = %q, an unsafe key", what, key)
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, k := range []string{
		"certificates/" + le + "/a.test.json", "a", "a/b", "", ".", "..", "a/../b", "/abs", `a\b`, "a\x00b",
		"C:/x", "a//b", "a/", "a.", "a ", ".a", "a..b", "\xff", "ü/ä", "a\nb", "a/.tmp-1", strings.Repeat("a", 1025),
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := ValidateKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ValidateKey(%q) = %v, which does not wrap ErrInvalidKey", key, err)
			}
			return
		}
		checkAccepted(t, "accepted key", key)
		if !utf8.ValidString(key) || strings.ContainsAny(key, ":") || len(key) > maxKeyLen {
			t.Fatalf("ValidateKey accepted %q", key)
		}
		if !filepath.IsLocal(key) {
			t.Fatalf("ValidateKey accepted %q, which filepath.IsLocal refuses", key)
		}
		for seg := range strings.SplitSeq(key, "/") {
			if seg == "" || seg[0] == '.' || strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
				t.Fatalf("ValidateKey accepted %q, with segment %q", key, seg)
			}
		}
		// Every prefix of a valid key, cut at a character, is a valid
		// prefix, and so is the key as a directory. (Long keys: only
		// around segment boundaries, to keep the target fast.)
		for i := range key {
			if len(key) > 128 && key[i] != '/' && (i == 0 || key[i-1] != '/') {
				continue
			}
			if err := ValidatePrefix(key[:i]); err != nil {
				t.Fatalf("ValidatePrefix(%q), a prefix of the valid key %q, = %v", key[:i], key, err)
			}
		}
		if err := ValidatePrefix(key); err != nil {
			t.Fatalf("ValidatePrefix(%q) = %v, but it is a valid key", key, err)
		}
		if len(key) < maxKeyLen {
			if err := ValidatePrefix(key + "/"); err != nil {
				t.Fatalf("ValidatePrefix(%q) = %v", key+"/", err)
			}
		}
	})
}

func FuzzCertificateKey(f *testing.F) {
	f.Add(le, "a.test")
	f.Add("https://acme-v02.api.letsencrypt.org/directory", "*.a.test")
	f.Add("localca", "2001:db8::1")
	f.Add("..", "a.")
	f.Add("a/b", "../x")
	f.Add("x", "a\x00b")
	f.Add("x", "a.test.")
	f.Add("https://ca.example./", "*.")
	f.Fuzz(func(t *testing.T, issuer, name string) {
		if len(issuer) > 4096 || len(name) > 4096 {
			return // past every limit the builders enforce; keeps minimisation quick
		}
		for _, id := range []string{issuer, IssuerID(issuer)} {
			if key, err := CertificateKey(id, name); err != nil {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("CertificateKey(%q, %q) = %v, which does not wrap ErrInvalidKey", id, name, err)
				}
			} else {
				checkAccepted(t, "CertificateKey", key)
				if !strings.HasPrefix(key, CertificatePrefix(id)) || strings.Count(key, "/") != 2 ||
					!strings.HasSuffix(key, ".json") {
					t.Fatalf("CertificateKey(%q, %q) = %q, want certificates/ISSUER/NAME.json", id, name, key)
				}
			}
			// name as an email.
			for _, build := range []func(string, string) (string, error){AccountKey, AccountPrivateKey} {
				if key, err := build(id, name); err == nil {
					checkAccepted(t, "account key", key)
					if strings.Count(key, "/") != 2 {
						t.Fatalf("account key of (%q, %q) = %q, want accounts/ISSUER/EMAIL.EXT", id, name, key)
					}
				} else if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("account key of (%q, %q): %v, which does not wrap ErrInvalidKey", id, name, err)
				}
			}
		}
		id := IssuerID(issuer)
		if len(id) <= maxKeyLen {
			if err := checkSegment("issuer ID", id); err != nil {
				t.Fatalf("IssuerID(%q) = %q, not a key segment: %v", issuer, id, err)
			}
		}
		if ValidateKey(name) == nil {
			checkAccepted(t, "IssueLock", IssueLock(name))
		}
	})
}

// TestNameSegmentLongNames: a 253-byte name still fits a file name (255
// bytes with its extension), and two long names that share a prefix stay
// distinct.
func TestNameSegmentLongNames(t *testing.T) {
	label := strings.Repeat("a", 63)
	long1 := label + "." + label + "." + label + "." + strings.Repeat("b", 56) + ".test" // 253 bytes
	long2 := label + "." + label + "." + label + "." + strings.Repeat("c", 56) + ".test"
	if len(long1) != 253 {
		t.Fatalf("test name is %d bytes", len(long1))
	}
	s1, err := NameSegment(long1)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := NameSegment(long2)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1)+len(".json") > 255 {
		t.Errorf("NameSegment(253-byte name) is %d bytes, too long for a file name", len(s1))
	}
	if s1 == s2 {
		t.Errorf("NameSegment gave %q for two different names", s1)
	}
	key, err := CertificateKey("local", long1)
	if err != nil || ValidateKey(key) != nil {
		t.Errorf("CertificateKey(253-byte name) = %q, %v", key, err)
	}
	if short, _ := NameSegment("a.test"); short != "a.test" {
		t.Errorf("NameSegment(a.test) = %q, want it unchanged", short)
	}
}

func TestPendingOrderKey(t *testing.T) {
	for _, tt := range []struct{ name, variant, want string }{
		{"a.test", "", "pending/a.test.json"},
		{"*.a.test", "", "pending/wildcard_a.test.json"},
		{"a.test", "rsa", "pending/a.test_rsa.json"},
	} {
		got, err := PendingOrderKey(tt.name, tt.variant)
		if err != nil || got != tt.want {
			t.Errorf("PendingOrderKey(%q, %q) = %q, %v, want %q", tt.name, tt.variant, got, err, tt.want)
		}
	}
	for _, bad := range [][2]string{{"", ""}, {"../x", ""}, {"A.test", ""}, {"a.test", "RSA"}, {"a.test", "r/s"}} {
		if k, err := PendingOrderKey(bad[0], bad[1]); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("PendingOrderKey(%q, %q) = %q, %v, want ErrInvalidKey", bad[0], bad[1], k, err)
		}
	}
}

func TestStapleKey(t *testing.T) {
	fp := strings.Repeat("0a", 32)
	got, err := StapleKey(fp)
	if err != nil || got != "ocsp/"+fp+".der" {
		t.Errorf("StapleKey(%q) = %q, %v, want ocsp/%s.der", fp, got, err, fp)
	}
	if err := ValidateKey(got); err != nil {
		t.Errorf("ValidateKey(%q) = %v", got, err)
	}
	for _, bad := range []string{"", "0a", strings.Repeat("0A", 32), strings.Repeat("../", 21) + "x", strings.Repeat("0g", 32)} {
		if k, err := StapleKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("StapleKey(%q) = %q, %v, want ErrInvalidKey", bad, k, err)
		}
	}
}

func TestIsSecret(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"certificates/acme/a.test.json", true},
		{"accounts/acme/default.key", true},
		{"accounts/acme/default.key.next", true}, // a key rollover's (acmeca) were stored in clear
		{"accounts/acme/a@b.test.key.old", true},
		{"localca/root.json", true},
		{"localca/intermediate.json", true},
		{"pending/a.test.json", true}, // an order being finalized holds the certificate's key
		{"accounts/acme/default.json", false},
		{"state/limits.json", false},
		{"ocsp/0123.der", false},
	}
	for _, tt := range tests {
		if got := IsSecret(tt.key); got != tt.want {
			t.Errorf("IsSecret(%q) = %v, want %v", tt.key, got, tt.want)
		}
		if !tt.want {
			continue
		}
		covered := false
		for _, p := range SecretPrefixes() {
			covered = covered || strings.HasPrefix(tt.key, p)
		}
		if !covered {
			t.Errorf("%q: IsSecret but under none of SecretPrefixes() = %q", tt.key, SecretPrefixes())
		}
	}
}

// TestIsKnownKey: every key a builder makes is known, and the files of
// another ACME client's directory (certbot's here) are not.
func TestIsKnownKey(t *testing.T) {
	must := func(key string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	acctKey := must(AccountPrivateKey(le, "ops@example.com"))
	known := []string{
		must(CertificateKey(le, "a.test")),
		must(CertificateKey("local", "*.a.test")),
		must(CertificateKey("local", "2001:db8::1")),
		must(CertificateKey("local", strings.Repeat("a", 63)+"."+strings.Repeat("b", 63)+"."+strings.Repeat("c", 63)+".test")),
		must(CertificateKeyVariant(le, "a.test", "rsa")),
		must(AccountKey(le, "ops@example.com")),
		must(AccountKey(le, "")),
		acctKey,
		acctKey + ".next", // issuer/acmeca's key rollover
		acctKey + ".old",
		LocalCAKey("root"),
		LocalCAKey("intermediate"),
		StateKey("limits"),
		StateKey("seen/0a"),
		must(OrdersKey(le)),
		must(StapleKey(strings.Repeat("0a", 32))),
		must(ChallengeKey("http-01", "tok_EN-1")),
		must(ChallengeKey("tls-alpn-01", "a.test")),
		must(PendingOrderKey("a.test", "")),
		must(PendingOrderKey("*.a.test", "rsa")),
	}
	for _, key := range known {
		if !IsKnownKey(key) {
			t.Errorf("IsKnownKey(%q) = false, want true (a builder makes it)", key)
		}
	}
	foreign := []string{
		"archive/a/privkey1.pem",
		"renewal/a.conf",
		"live/README",
		"keys/0000_key-certbot.pem",
		"csr/0000_csr-certbot.pem",
		"accounts/acme-v02.api.letsencrypt.org/directory/0123abcd/private_key.json", // certbot's
		"certificates/a.test.crt", // lego's
		"certificates/x/a.test.key",
		"certificates/x/y/a.test.json",
		"accounts/x/default.pem",
		"localca/root.key",
		"localca/x/root.json",
		"ocsp/0123.der",
		"ocsp/" + strings.Repeat("0A", 32) + ".der",
		"state/limits",
		"challenges/http-01.json",
		"README",
		"state/.json",
		"",
	}
	for _, key := range foreign {
		if IsKnownKey(key) {
			t.Errorf("IsKnownKey(%q) = true, want false", key)
		}
	}
}
