package engine

import (
	"context"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
)

// NotPublicPattern is an allowlist pattern whose names only Let's Encrypt
// would be asked for, but that it can never issue for.
type NotPublicPattern struct {
	Pattern string
	// Reason is hostname.NotPublic's: why no public CA issues for it.
	Reason string
}

// NotPublic returns the allowlist patterns (policy.ParseAllowlist) that
// would go to Let's Encrypt alone (production or staging; cas empty is
// Let's Encrypt), through cas or the first of rules matching them, yet
// name what it never issues for (hostname.NotPublic): localhost, *.local,
// *.internal, private addresses, single labels. A chain with any other CA
// (local, a directory URL) is trusted to be one that can. Invalid and
// "re:" patterns are not judged. It is for a warning at start: such a
// pattern is not wrong, only certain to fail at each handshake.
func NotPublic(cas []string, rules []Rule, patterns []string) []NotPublicPattern {
	var out []NotPublicPattern
	for _, p := range patterns {
		n, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(p)
		if err != nil || strings.HasPrefix(p, "re:") {
			continue
		}
		chain := cas
		for _, r := range rules {
			if len(r.CAs) > 0 && policy.Allowlist(r.Pattern).Decide(context.Background(), n) == nil {
				chain = r.CAs
				break
			}
		}
		if !letsEncryptOnly(chain) {
			continue
		}
		if why := hostname.NotPublic(n); why != "" {
			out = append(out, NotPublicPattern{Pattern: p, Reason: why})
		}
	}
	return out
}

// letsEncryptOnly reports whether every CA of chain is Let's Encrypt's
// production or staging CA (an empty chain is Let's Encrypt).
func letsEncryptOnly(chain []string) bool {
	for _, ca := range chain {
		if u := CAURL(ca); u != acmeca.LetsEncrypt && u != acmeca.LetsEncryptStaging {
			return false
		}
	}
	return true
}
