package policy

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
)

// regexpPrefix marks an allowlist pattern as a regular expression. No
// hostname or IP literal contains "re:", so the prefix cannot be mistaken
// for a name.
const regexpPrefix = "re:"

// Allowlist returns a Policy that allows the names matching any of
// patterns. A pattern is one of:
//
//   - a name or IP literal, "a.test" or "192.0.2.1": exactly that name;
//   - "*.a.test": every name under a.test at any depth ("x.a.test",
//     "y.x.a.test", and the wildcard "*.x.a.test"), but not "a.test"
//     itself: list both to allow both. This is broader than a certificate
//     wildcard, which matches one label (RFC 6125 §6.4.3): the Allowlist
//     says which names may be issued, not which a certificate covers;
//   - "re:EXPR": the names that the regular expression EXPR (RE2 syntax,
//     package regexp) matches as a whole. EXPR is anchored for you, as
//     ^(?:EXPR)$, so "re:[a-z]+\.a\.test" matches "x.a.test" but not
//     "x.a.test.evil.test", as an unanchored search would. It is matched
//     against the normalised name, lower case and in punycode: write
//     "re:xn--n-nga1b\.test", not "re:ünï\.test".
//
// Name patterns are normalised as by hostname.Normalizer{AllowIP: true,
// AllowWildcard: true}, so "Ünï.Test." and "xn--n-nga1b.test" are one
// pattern. Invalid patterns make the returned Policy refuse every name,
// with an error that names the patterns and matches ErrDenied (and
// hostname.ErrInvalidName for an invalid name): a typo in a configured
// list fails closed, and a certkeeper.Manager with this Policy fails
// Start naming them (the Policy's Err method). ParseAllowlist reports them
// to the caller instead. With no patterns every name is refused.
//
// Deciding an exact match allocates nothing; wildcard and regular
// expression patterns are tried only when no exact pattern matches.
func Allowlist(patterns ...string) Policy {
	a, err := parseAllowlist(patterns)
	if err != nil {
		a.err = err
	}
	return a
}

// ParseAllowlist is like Allowlist but reports invalid patterns: an error
// joining one *PatternError per invalid pattern, each wrapping the
// *hostname.NameError or the regexp error (*syntax.Error) that explains it.
// The Policy is nil when err is not. No patterns is not an error: the
// Policy refuses every name.
func ParseAllowlist(patterns ...string) (Policy, error) {
	a, err := parseAllowlist(patterns)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// PatternError reports an allowlist pattern that ParseAllowlist refuses.
type PatternError struct {
	// Pattern is the pattern as it was given.
	Pattern string
	// Err explains it: a *hostname.NameError, or the regexp package's
	// error for a "re:" pattern.
	Err error
}

// Error returns `allowlist pattern "a..test": empty label`.
func (e *PatternError) Error() string {
	return fmt.Sprintf("allowlist pattern %q: %s", e.Pattern, e.Reason())
}

// Reason says what is wrong with the pattern, without quoting it, for a
// caller that names the pattern its own way (a flag, a config key).
func (e *PatternError) Reason() string {
	if ne, ok := errors.AsType[*hostname.NameError](e.Err); ok {
		return ne.Reason
	}
	return e.Err.Error()
}

// Unwrap returns Err.
func (e *PatternError) Unwrap() error { return e.Err }

// PatternErrors returns the *PatternError of each invalid pattern that
// err (ParseAllowlist's, or Config.Policy's) joins, in the patterns'
// order.
func PatternErrors(err error) []*PatternError {
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	var out []*PatternError
	for _, e := range list {
		if pe, ok := errors.AsType[*PatternError](e); ok {
			out = append(out, pe)
		}
	}
	return out
}

// allowlist is immutable after parseAllowlist returns.
type allowlist struct {
	exact    map[string]struct{} // normalised patterns, wildcards included
	suffixes map[string]struct{} // "a.test" for each pattern "*.a.test"
	regexps  []*regexp.Regexp    // anchored "re:" patterns, in the given order
	err      error               // invalid patterns: deny everything
}

// Err returns the invalid patterns Allowlist was given (nil when none
// was): certkeeper.Manager.Start reports them, so a typo shows at start
// rather than as every name refused.
func (a *allowlist) Err() error { return a.err }

// parseAllowlist always returns a usable allowlist holding the valid
// patterns, and the joined errors of the invalid ones.
func parseAllowlist(patterns []string) (*allowlist, error) {
	a := &allowlist{
		exact:    make(map[string]struct{}, len(patterns)),
		suffixes: make(map[string]struct{}),
	}
	var errs []error
	for _, p := range patterns {
		if expr, ok := strings.CutPrefix(p, regexpPrefix); ok {
			re, err := compileAnchored(expr)
			if err != nil {
				errs = append(errs, &PatternError{Pattern: p, Err: err})
				continue
			}
			a.regexps = append(a.regexps, re)
			continue
		}
		// Patterns may be wildcards or IP literals: an operator lists
		// them on purpose.
		n, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(p)
		if err != nil {
			errs = append(errs, &PatternError{Pattern: p, Err: hostname.WithHostHint(p, err)})
			continue
		}
		a.exact[n] = struct{}{}
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			a.suffixes[rest] = struct{}{}
		}
	}
	return a, errors.Join(errs...)
}

// compileAnchored compiles expr so that it must match a whole name.
// expr is compiled alone first: wrapping an unbalanced expression such as
// "a)|(b" in ^(?:…)$ would make it valid and change its meaning, and the
// error an operator sees should quote what they wrote.
func compileAnchored(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, errors.New("empty regular expression")
	}
	if _, err := regexp.Compile(expr); err != nil {
		return nil, err
	}
	return regexp.Compile("^(?:" + expr + ")$")
}

// Decide allows name if it matches a pattern.
func (a *allowlist) Decide(_ context.Context, name string) error {
	if a.err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDenied, name, a.err)
	}
	if _, ok := a.exact[name]; ok {
		return nil
	}
	if len(a.suffixes) == 0 && len(a.regexps) == 0 {
		return fmt.Errorf("%w: %s is not on the allowlist", ErrDenied, name)
	}
	// A suffix or regular-expression match must not accept what Normalize
	// refuses ("x..a.test" ends in ".a.test" too, and "re:.*\.a\.test"
	// matches it): check the name before matching it.
	n, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(name)
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
	for _, re := range a.regexps {
		if re.MatchString(name) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not on the allowlist", ErrDenied, name)
}
