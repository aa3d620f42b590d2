package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestAllowlist(t *testing.T) {
	uni := punycode(t, "ünï.test")
	tests := []struct {
		name     string
		patterns []string
		in       string
		allow    bool
	}{
		{"exact", []string{"a.test"}, "a.test", true},
		{"exact pattern normalised", []string{"A.Test."}, "a.test", true},
		{"unicode pattern", []string{"ünï.test"}, uni, true},
		{"other name", []string{"a.test"}, "b.test", false},
		{"subdomain of exact", []string{"a.test"}, "x.a.test", false},
		{"wildcard one level", []string{"*.a.test"}, "x.a.test", true},
		{"wildcard two levels", []string{"*.a.test"}, "y.x.a.test", true},
		{"wildcard not apex", []string{"*.a.test"}, "a.test", false},
		{"wildcard itself", []string{"*.a.test"}, "*.a.test", true},
		{"wildcard below", []string{"*.a.test"}, "*.x.a.test", true},
		{"wildcard suffix not label", []string{"*.a.test"}, "xa.test", false},
		{"wildcard with apex", []string{"a.test", "*.a.test"}, "a.test", true},
		{"wildcard other domain", []string{"*.a.test"}, "x.b.test", false},
		{"wildcard unnormalised name", []string{"*.a.test"}, "X.a.test", false},
		{"wildcard empty label", []string{"*.a.test"}, "x..a.test", false},
		{"IP", []string{"127.0.0.1", "::1"}, "::1", true},
		{"IP not listed", []string{"127.0.0.1"}, "127.0.0.2", false},
		{"IP with wildcards listed", []string{"*.a.test"}, "127.0.0.2", false},
		{"empty list", nil, "a.test", false},
		{"unnormalised name", []string{"a.test"}, "A.TEST", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Allowlist(tt.patterns...).Decide(t.Context(), tt.in)
			if tt.allow {
				if err != nil {
					t.Errorf("Allowlist(%q).Decide(%q) = %v, want nil", tt.patterns, tt.in, err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("Allowlist(%q).Decide(%q) = %v, want ErrDenied naming %q", tt.patterns, tt.in, err, tt.in)
			}
		})
	}
}

func TestAllowlistInvalidPattern(t *testing.T) {
	p := Allowlist("a.test", "a..b", "c.test")
	err := p.Decide(t.Context(), "a.test")
	var ne *NameError
	if !errors.Is(err, ErrDenied) || !errors.As(err, &ne) || ne.Name != "a..b" {
		t.Errorf(`Allowlist("a.test", "a..b", "c.test").Decide("a.test") = %v, want ErrDenied and a *NameError for "a..b"`, err)
	}
}

func TestAllowlistExactAllocs(t *testing.T) {
	p := Allowlist("a.test", "*.b.test")
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		if err := p.Decide(ctx, "a.test"); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decide(%q) allocates %v times, want 0", "a.test", allocs)
	}
}

func TestFunc(t *testing.T) {
	deny := errors.New("no")
	var p Policy = Func(func(_ context.Context, name string) error {
		if name == "a.test" {
			return nil
		}
		return deny
	})
	tests := []struct {
		in   string
		want error
	}{
		{"a.test", nil},
		{"b.test", deny},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := p.Decide(t.Context(), tt.in); got != tt.want {
				t.Errorf("Decide(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
