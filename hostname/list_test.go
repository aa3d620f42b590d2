package hostname_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/hostname"
)

func TestNormalizeAll(t *testing.T) {
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	got, err := n.NormalizeAll([]string{"B.test", "a.test", "b.test.", "*.c.test", "::ffff:10.0.0.1", "10.0.0.1"})
	want := []string{"b.test", "a.test", "*.c.test", "10.0.0.1"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("NormalizeAll = %q, %v; want %q", got, err, want)
	}
	if _, err := n.NormalizeAll([]string{"a.test", "bad_name.test"}); !errors.Is(err, hostname.ErrInvalidName) {
		t.Errorf("NormalizeAll with an invalid name = %v, want ErrInvalidName", err)
	}
	// A URL or HOST:PORT pasted for a name (cert issue -d https://a.test/)
	// is told the name to give.
	for _, s := range []string{"https://a.test/", "a.test:443"} {
		if _, err := n.NormalizeAll([]string{s}); !errors.Is(err, hostname.ErrInvalidName) || !strings.Contains(err.Error(), "give the host name alone: a.test") {
			t.Errorf("NormalizeAll(%q) = %v, want ErrInvalidName naming a.test", s, err)
		}
	}
}

func TestWithApex(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"www.a.test"}, []string{"www.a.test", "a.test"}},
		{[]string{"a.test", "www.a.test"}, []string{"a.test", "www.a.test"}},
		{[]string{"www.a.test", "www.b.test"}, []string{"www.a.test", "www.b.test", "a.test", "b.test"}},
		{[]string{"www.test"}, []string{"www.test"}},
	} {
		if got := hostname.WithApex(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("WithApex(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
