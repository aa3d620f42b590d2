package certkeeper

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer"
)

// On-demand wildcards (Manager.Wildcards): a handshake for any name one
// label under a configured wildcard's parent, or for the parent itself,
// obtains the wildcard and its parent together, once. The flight key is
// the wildcard, so concurrent handshakes for different subdomains share
// one issuance; afterwards the cache's one-label wildcard lookup serves
// every subdomain without a lock or an order.

// checkWildcards refuses, at Start, an entry of Wildcards that is no
// wildcard (it would be skipped, unsaid) and one whose issuers cannot
// validate a wildcard (an acmeca.Issuer without a DNS solver: every
// handshake under it would fail).
func (m *Manager) checkWildcards() error {
	var errs []error
	n := hostname.Normalizer{AllowWildcard: true}
	for i, w := range m.Wildcards {
		nw, err := n.Normalize(w)
		if err != nil || !strings.HasPrefix(nw, "*.") {
			errs = append(errs, fmt.Errorf("certkeeper: Manager.Wildcards[%d] %q: want *.ZONE, e.g. *.a.example", i, w))
			continue
		}
		issuers := m.issuersFor(nw)
		if !slices.ContainsFunc(issuers, func(iss issuer.Issuer) bool {
			v, ok := iss.(interface{ ValidatesWildcards() bool })
			return !ok || v.ValidatesWildcards()
		}) {
			errs = append(errs, fmt.Errorf("certkeeper: Manager.Wildcards[%d] %s: none of its issuers can validate a wildcard, "+
				"which CAs validate only through DNS: give an acmeca.Issuer a dns-01 solver (Solvers[acmeca.DNS01], in ChallengeOrder if set) or dns-persist-01", i, nw))
		}
	}
	return errors.Join(errs...)
}

// onDemandNames returns the names of the certificate a handshake for name
// obtains: the configured wildcard covering it and its parent
// ("*.a.example", "a.example"), or name alone.
func (m *Manager) onDemandNames(name string) []string {
	if parent := m.wildcardParent(name); parent != "" {
		return []string{"*." + parent, parent}
	}
	return []string{name}
}

// flightName is the single-flight key of an on-demand handshake for name:
// the certificate's primary name.
func (m *Manager) flightName(name string) string {
	if parent := m.wildcardParent(name); parent != "" {
		return "*." + parent
	}
	return name
}

// wildcardParent returns the parent domain of the entry of Wildcards that
// covers name (a.example for *.a.example, when name is x.a.example or
// a.example), or "". TLS wildcards match one label only, so
// y.x.a.example is not covered. It runs only on the slow path of a
// handshake.
func (m *Manager) wildcardParent(name string) string {
	if len(m.Wildcards) == 0 || strings.HasPrefix(name, "*.") {
		return ""
	}
	n := hostname.Normalizer{AllowWildcard: true}
	for _, w := range m.Wildcards {
		w, err := n.Normalize(w)
		if err != nil {
			continue
		}
		parent, ok := strings.CutPrefix(w, "*.")
		if !ok {
			continue
		}
		if name == parent {
			return parent
		}
		if i := strings.IndexByte(name, '.'); i > 0 && name[i+1:] == parent {
			return parent
		}
	}
	return ""
}
