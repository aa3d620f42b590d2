package hostname

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"", "a..b", long(300), "-a.test", "*.*.a.test", "a.*.test", "exa mple.test",
		"a_b.test", "ünï.test", "127.0.0.1", "::1", "A.TEST.",
		"*.a.test", "xn--n-nga1b.test", "xn--n-0ea6b.test", "XN--A-.test", "fe80::1%eth0", "::ffff:1.2.3.4",
		"a\u3002test", "ß.test", "0x7f", "ab--c.test", "a.test\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, nz := range []Normalizer{{}, {AllowIP: true, AllowWildcard: true}} {
			got, err := nz.Normalize(in)
			if err != nil {
				if got != "" {
					t.Fatalf("%+v.Normalize(%q) = %q, %v, want \"\" with an error", nz, in, got, err)
				}
				continue
			}
			again, err := nz.Normalize(got)
			if err != nil || again != got {
				t.Fatalf("%+v.Normalize(%q) = %q, %v, want %q (idempotent; from %q)", nz, got, again, err, got, in)
			}
			checkResult(t, nz, in, got)
		}
	})
}

// checkResult checks the invariants every normalised name holds.
func checkResult(t *testing.T, nz Normalizer, in, got string) {
	t.Helper()
	switch {
	case got == "":
		t.Fatalf("%+v.Normalize(%q) = \"\", nil", nz, in)
	case len(got) > maxNameLen && !strings.Contains(got, ":"):
		t.Fatalf("%+v.Normalize(%q) = %q: %d bytes", nz, in, got, len(got))
	case !isASCII(got) || !utf8.ValidString(got):
		t.Fatalf("%+v.Normalize(%q) = %q: not ASCII", nz, in, got)
	case got != strings.ToLower(got):
		t.Fatalf("%+v.Normalize(%q) = %q: not lower case", nz, in, got)
	case strings.Contains(got, ".."), strings.ContainsAny(got, "/\\\x00 \t\r\n%[]"):
		t.Fatalf("%+v.Normalize(%q) = %q: forbidden substring", nz, in, got)
	}
	if addr, err := netip.ParseAddr(got); err == nil {
		if !nz.AllowIP || addr.String() != got {
			t.Fatalf("%+v.Normalize(%q) = %q: IP literal not allowed or not canonical", nz, in, got)
		}
		return
	}
	dns, wild := strings.CutPrefix(got, "*.")
	if wild && !nz.AllowWildcard {
		t.Fatalf("%+v.Normalize(%q) = %q: a wildcard", nz, in, got)
	}
	for label := range strings.SplitSeq(dns, ".") {
		if !validLabel(label) {
			t.Fatalf("%+v.Normalize(%q) = %q: invalid label %q", nz, in, got, label)
		}
	}
}

// validLabel is the label rule written out again, independently of
// checkLabel: 1 to 63 bytes of [a-z0-9-], no hyphen at either end.
func validLabel(l string) bool {
	if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	return strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}
