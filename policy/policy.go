package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrDenied is wrapped by every error with which a Policy refuses a name,
// so callers tell "not allowed" from "could not decide" with errors.Is.
var ErrDenied = errors.New("name denied by policy")

// Policy decides whether a name may have a certificate. It is consulted
// only for names that have no certificate yet, before any storage lock or
// CA traffic, so it is where an SNI flood of unknown names stops.
type Policy interface {
	// Decide returns nil if name may have a certificate. name has been
	// normalised (Normalize or a Normalizer). A refusal wraps ErrDenied
	// and names the name; any other error (an ask URL that does not
	// answer, ctx done) also means "no", with a different cause.
	Decide(ctx context.Context, name string) error
}

// Func adapts a function to Policy, as http.HandlerFunc does for handlers.
type Func func(ctx context.Context, name string) error

// Decide returns f(ctx, name).
func (f Func) Decide(ctx context.Context, name string) error { return f(ctx, name) }

// Allowlist returns a Policy that allows exactly the names it is given and,
// for a pattern "*.a.test", every name under a.test at any depth
// ("x.a.test", "y.x.a.test", and the wildcard "*.x.a.test"), but not
// "a.test" itself: list both to allow both. This is broader than a
// certificate wildcard, which matches one label (RFC 6125 §6.4.3): the
// Allowlist says which names may be issued, not which a certificate covers.
//
// Patterns are normalised as by Normalizer{AllowIP: true, AllowWildcard:
// true}, so "Ünï.Test." and "xn--n-nga1b.test" are one pattern. An invalid
// pattern makes the returned Policy refuse every name, with an error that
// names the pattern and matches both ErrDenied and ErrInvalidName: a typo
// in a configured list fails closed. Validate patterns with a Normalizer
// first to report them at startup. With no patterns every name is refused.
//
// Deciding an exact match allocates nothing.
func Allowlist(patterns ...string) Policy {
	a := &allowlist{
		exact:    make(map[string]struct{}, len(patterns)),
		suffixes: make(map[string]struct{}),
	}
	nz := Normalizer{AllowIP: true, AllowWildcard: true}
	for _, p := range patterns {
		n, err := nz.Normalize(p)
		if err != nil {
			a.err = fmt.Errorf("allowlist pattern: %w", err)
			break
		}
		a.exact[n] = struct{}{}
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			a.suffixes[rest] = struct{}{}
		}
	}
	return a
}

// allowlist is immutable after Allowlist returns.
type allowlist struct {
	exact    map[string]struct{} // normalised patterns, wildcards included
	suffixes map[string]struct{} // "a.test" for each pattern "*.a.test"
	err      error               // an invalid pattern: deny everything
}

func (a *allowlist) Decide(_ context.Context, name string) error {
	if a.err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDenied, name, a.err)
	}
	if _, ok := a.exact[name]; ok {
		return nil
	}
	if len(a.suffixes) == 0 {
		return fmt.Errorf("%w: %s is not on the allowlist", ErrDenied, name)
	}
	// A suffix match must not accept what Normalize refuses ("x..a.test"
	// ends in ".a.test" too): check the name before matching it.
	n, err := Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDenied, err)
	}
	if n != name {
		return fmt.Errorf("%w: %s is not normalised (%s)", ErrDenied, name, n)
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if _, ok := a.suffixes[name[i+1:]]; ok {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not on the allowlist", ErrDenied, name)
}
