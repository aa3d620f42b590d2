package policy

import (
	"context"
	"errors"
)

// ErrPrivateWithoutOwnIP is Config.Policy's error for OwnIPPrivate
// without RequireOwnIP: it would have no effect, which is a mistake worth
// reporting rather than ignoring.
var ErrPrivateWithoutOwnIP = errors.New("OwnIPPrivate only applies with RequireOwnIP")

// Config is an on-demand policy as a configuration file or a command
// line states it: the checks a name must all pass before it gets a
// certificate. The zero Config has no check.
type Config struct {
	// Allow are allowlist patterns (ParseAllowlist); none: no allowlist.
	Allow []string
	// RequireOwnIP allows only names that resolve to this host's own
	// public addresses (RequireOwnIP); OwnIPPrivate counts loopback,
	// link-local and private addresses as its own too.
	RequireOwnIP, OwnIPPrivate bool
	// Ask is the URL of an AskURL check; "": none.
	Ask string
	// Routed are patterns (as Allow's) that are allowed whatever the
	// checks above say: the names a proxy routes to a backend of their
	// own, which its operator named once already (a route without an
	// allow entry was a site whose every handshake failed).
	Routed []string
}

// Policy builds c's checks, cheapest first (allowlist, own address, ask
// URL), joined by All when there are several, and allows the Routed
// patterns before any of them; nil when c has none. An
// invalid Allow pattern returns ParseAllowlist's error as it is, and
// OwnIPPrivate without RequireOwnIP returns ErrPrivateWithoutOwnIP, and
// an Ask that AskURL.Check refuses an error matching ErrInvalidAskURL.
func (c Config) Policy() (Policy, error) {
	var checks []Policy
	if len(c.Allow) > 0 {
		p, err := ParseAllowlist(c.Allow...)
		if err != nil {
			return nil, err
		}
		checks = append(checks, p)
	}
	if c.OwnIPPrivate && !c.RequireOwnIP {
		return nil, ErrPrivateWithoutOwnIP
	}
	if c.RequireOwnIP {
		checks = append(checks, &RequireOwnIP{AllowPrivate: c.OwnIPPrivate})
	}
	if c.Ask != "" {
		a := &AskURL{URL: c.Ask}
		if err := a.Check(); err != nil {
			return nil, err
		}
		checks = append(checks, a)
	}
	var rest Policy
	switch len(checks) {
	case 0:
	case 1:
		rest = checks[0]
	default:
		rest = All(checks...)
	}
	if len(c.Routed) == 0 {
		return rest, nil
	}
	routed, err := ParseAllowlist(c.Routed...)
	if err != nil {
		return nil, err
	}
	if rest == nil {
		return routed, nil
	}
	return routedOr{routed, rest}, nil
}

// routedOr allows the names routed allows, and decides the rest with
// rest, whose refusal is the one returned (routed's would only say that a
// name is not routed).
type routedOr struct{ routed, rest Policy }

func (p routedOr) Decide(ctx context.Context, name string) error {
	if p.routed.Decide(ctx, name) == nil {
		return nil
	}
	return p.rest.Decide(ctx, name)
}
