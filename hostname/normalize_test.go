package hostname

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

// punycode computes the expected A-label form with the raw punycode
// profile, a different code path from the lookup profile under test.
func punycode(t *testing.T, s string) string {
	t.Helper()
	a, err := idna.Punycode.ToASCII(s)
	if err != nil {
		t.Fatalf("idna.Punycode.ToASCII(%q): %v", s, err)
	}
	if !strings.Contains(a, "xn--") {
		t.Fatalf("idna.Punycode.ToASCII(%q) = %q, want an xn-- label", s, a)
	}
	return a
}

// long builds a name of exactly n bytes from labels of 50 bytes.
func long(n int) string {
	b := []byte(strings.Repeat("a", n))
	for i := 50; i < n-1; i += 51 {
		b[i] = '.'
	}
	return string(b)
}

func TestNormalize(t *testing.T) {
	uni := punycode(t, "ünï.test")
	eszett := punycode(t, "ß.test")
	var (
		ip   = Normalizer{AllowIP: true}
		wild = Normalizer{AllowWildcard: true}
		all  = Normalizer{AllowIP: true, AllowWildcard: true}
	)
	tests := []struct {
		name   string
		nz     Normalizer
		in     string
		want   string
		reason string // non-empty: an error whose Reason contains this
	}{
		{name: "plain", in: "a.test", want: "a.test"},
		{name: "upper and trailing dot", in: "A.TEST.", want: "a.test"},
		{name: "single label", in: "localhost", want: "localhost"},
		{name: "digits and hyphens", in: "1a-b.x-2.test", want: "1a-b.x-2.test"},
		{name: "numeric inner label", in: "123.test", want: "123.test"},
		{name: "unicode", in: "ünï.test", want: uni},
		{name: "unicode upper case", in: "ÜNÏ.TEST", want: uni},
		{name: "A-label kept", in: uni, want: uni},
		{name: "A-label upper case", in: strings.ToUpper(uni), want: uni},
		{name: "non-transitional eszett", in: "ß.test", want: eszett},
		{name: "fullwidth dot maps", in: "a\u3002test", want: "a.test"},
		{name: "253 bytes", in: long(253), want: long(253)},
		{name: "63-byte label", in: strings.Repeat("a", 63) + ".test", want: strings.Repeat("a", 63) + ".test"},

		{name: "empty", in: "", reason: "empty name"},
		{name: "only dot", in: ".", reason: "empty label"},
		{name: "empty inner label", in: "a..b", reason: "empty label"},
		{name: "leading dot", in: ".a.test", reason: "empty label"},
		{name: "two trailing dots", in: "a.test..", reason: "empty label"},
		{name: "254 bytes", in: long(254), reason: "more than 253"},
		{name: "300 bytes", in: long(300), reason: "more than 253"},
		{name: "huge input", in: strings.Repeat("a", 5000), reason: "more than 1024"},
		{name: "64-byte label", in: strings.Repeat("a", 64) + ".test", reason: "label of 64 bytes"},
		{name: "leading hyphen", in: "-a.test", reason: "hyphen"},
		{name: "trailing hyphen", in: "a-.test", reason: "hyphen"},
		{name: "reserved ldh", in: "ab--c.test", reason: "reserved"},
		{name: "bad punycode", in: "xn--a-.test", reason: "IDNA"},
		{name: "space inside", in: "exa mple.test", reason: "white space"},
		{name: "space around", in: " a.test", reason: "white space"},
		{name: "trailing newline", in: "a.test\n", reason: "white space"},
		{name: "no-break space", in: "a\u00a0b.test", reason: "white space"},
		{name: "NUL", in: "a\x00b.test", reason: "control character"},
		{name: "invalid UTF-8", in: "\xff.test", reason: "invalid UTF-8"},
		{name: "underscore", in: "a_b.test", reason: `contains '_'`},
		{name: "slash", in: "a/b.test", reason: `contains '/'`},
		{name: "backslash", in: `a\b.test`, reason: `contains '\\'`},
		{name: "dot dot slash", in: "../a", reason: "empty label"},
		{name: "port", in: "a.test:443", reason: `contains ':'`},
		{name: "short IPv4", in: "127.1", reason: "numeric"},
		{name: "five numbers", in: "1.2.3.4.5", reason: "numeric"},
		{name: "hex last label", in: "a.0x7f", reason: "numeric"},
		{name: "numeric single label", in: "3232235777", reason: "numeric"},
		{name: "IPv4 with dot", nz: ip, in: "127.0.0.1.", reason: "numeric"},
		{name: "unicode disallowed", in: "a\u2488.test", reason: "IDNA"},

		{name: "wildcard refused by default", in: "*.a.test", reason: "wildcard not allowed"},
		{name: "wildcard", nz: wild, in: "*.a.test", want: "*.a.test"},
		{name: "wildcard upper", nz: wild, in: "*.A.Test.", want: "*.a.test"},
		{name: "wildcard on a TLD", nz: wild, in: "*.test", want: "*.test"},
		{name: "wildcard unicode", nz: wild, in: "*.ünï.test", want: "*." + uni},
		{name: "two wildcards", nz: wild, in: "*.*.a.test", reason: "leftmost"},
		{name: "inner wildcard", nz: wild, in: "a.*.test", reason: "leftmost"},
		{name: "partial wildcard", nz: wild, in: "*a.test", reason: "leftmost"},
		{name: "bare wildcard", nz: wild, in: "*", reason: "needs the zone it covers"},
		{name: "wildcard and nothing", nz: wild, in: "*.", reason: "needs the zone it covers"},
		{name: "wildcard empty rest", nz: wild, in: "*..", reason: "empty label"},
		{name: "wildcard over IP", nz: all, in: "*.127.0.0.1", reason: "numeric"},

		{name: "IPv4 refused by default", in: "127.0.0.1", reason: "IP address not allowed"},
		{name: "IPv6 refused by default", in: "::1", reason: "IP address not allowed"},
		{name: "IPv4", nz: ip, in: "127.0.0.1", want: "127.0.0.1"},
		{name: "IPv6", nz: ip, in: "::1", want: "::1"},
		{name: "IPv6 canonical", nz: ip, in: "2001:0DB8:0000::0001", want: "2001:db8::1"},
		{name: "IPv4-mapped", nz: ip, in: "::ffff:10.0.0.1", want: "10.0.0.1"},
		{name: "IPv6 zone", nz: ip, in: "fe80::1%eth0", reason: "zone"},
		{name: "IPv6 brackets", nz: ip, in: "[::1]", reason: `contains '['`},
		{name: "IPv4 leading zero", nz: ip, in: "010.0.0.1", reason: "numeric"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.nz.Normalize(tt.in)
			if tt.reason == "" {
				if err != nil || got != tt.want {
					t.Fatalf("%+v.Normalize(%q) = %q, %v, want %q", tt.nz, tt.in, got, err, tt.want)
				}
				again, err := tt.nz.Normalize(got)
				if err != nil || again != got {
					t.Errorf("%+v.Normalize(%q) = %q, %v, want %q (idempotent)", tt.nz, got, again, err, got)
				}
				return
			}
			var ne *NameError
			if !errors.As(err, &ne) || !errors.Is(err, ErrInvalidName) {
				t.Fatalf("%+v.Normalize(%q) = %q, %v, want a *NameError", tt.nz, tt.in, got, err)
			}
			if got != "" || ne.Name != tt.in || !strings.Contains(ne.Reason, tt.reason) {
				t.Errorf("%+v.Normalize(%q) = %q, %v, want reason containing %q", tt.nz, tt.in, got, err, tt.reason)
			}
		})
	}
}

func TestNormalizeIsStrict(t *testing.T) {
	for _, in := range []string{"*.a.test", "::1", "a.test"} {
		got, err := Normalize(in)
		want, wantErr := Normalizer{}.Normalize(in)
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("Normalize(%q) = %q, %v, want %q, %v", in, got, err, want, wantErr)
		}
	}
}

func TestNameError(t *testing.T) {
	tests := []struct {
		name string
		err  *NameError
		want string
	}{
		{"short", &NameError{Name: "a..b", Reason: "empty label"}, `invalid name "a..b": empty label`},
		{"long", &NameError{Name: strings.Repeat("a", 300), Reason: "x"},
			`invalid name "` + strings.Repeat("a", 64) + `...": x`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.err, ErrInvalidName) {
				t.Errorf("errors.Is(%v, ErrInvalidName) = false, want true", tt.err)
			}
			// Only ErrInvalidName: a policy refusal (policy.ErrDenied)
			// or any other sentinel must not match a syntax error.
			if other := errors.New("name denied by policy"); errors.Is(tt.err, other) {
				t.Errorf("errors.Is(%v, another sentinel) = true, want false", tt.err)
			}
		})
	}
}

func TestNormalizeASCIIAllocs(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Normalize("www.a.test"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Normalize(%q) allocates %v times, want 0", "www.a.test", allocs)
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, in := range []string{"www.a.test", "WWW.A.TEST.", "ünï.test"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestNotPublic(t *testing.T) {
	for name, public := range map[string]bool{
		"a.example.com": true, "*.a.example.org": true, "xn--n-nga1b.de": true, "8.8.8.8": true, "2001:4860::8888": true,
		"localhost": false, "intranet": false, "a.localhost": false, "a.test": false, "*.a.test": false, "example": false,
		"www.example": false, "printer.local": false, "x.internal": false, "nas.home.arpa": false, "b.alt": false,
		"a.invalid": false, "127.0.0.1": false, "10.1.2.3": false, "192.168.0.1": false, "::1": false, "fe80::1": false,
		"0.0.0.0": false, "fd00::1": false, "testing.com": true, "mytest": false, "local.com": true,
	} {
		if got := NotPublic(name); (got == "") != public {
			t.Errorf("NotPublic(%q) = %q; want public %v", name, got, public)
		}
	}
}
