package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
)

// OneShot is how an issuance outside a Manager (the command's cert issue
// and cert renew) answers its one challenge type: with a listener of its
// own for http-01 and tls-alpn-01, since no server runs, or through DNS.
type OneShot struct {
	// Challenge is http-01, tls-alpn-01, dns-01 or dns-persist-01.
	Challenge string
	// HTTPAddr and TLSALPNAddr are where http-01 and tls-alpn-01 are
	// answered (the CA connects to ports 80 and 443).
	HTTPAddr, TLSALPNAddr string
	// Webroot, if set, answers http-01 through a web server serving
	// this directory (http01.Webroot) instead of listening on HTTPAddr.
	Webroot string
	// DNS01 sets dns-01's records; required for dns-01.
	DNS01 *dns01.Solver
	// DNSResolver finds dns-persist-01 records, for dns-01 and
	// dns-persist-01.
	DNSResolver dns01.Resolver
	// Logger receives the solvers' logs; nil means slog.Default().
	Logger *slog.Logger
}

// Listen gives iss the solvers of o.Challenge, starting its listener
// first so that a busy port fails before anything is ordered, and
// returns the func that stops it. dns-01 also uses dns-persist-01
// wherever its record is in place. A listener that cannot start is a
// *ListenError.
func (o OneShot) Listen(iss *acmeca.Issuer) (stop func(), err error) {
	var closer func() error
	switch o.Challenge {
	case acmeca.HTTP01:
		if o.Webroot != "" {
			closer = func() error { return nil }
			iss.Solvers = map[string]solver.Solver{acmeca.HTTP01: &http01.Webroot{Dir: o.Webroot, Logger: o.Logger}}
			break
		}
		s := &http01.Solver{Logger: o.Logger}
		srv, err := s.Listen(o.HTTPAddr)
		if err != nil {
			return nil, &ListenError{Addr: o.HTTPAddr, Challenge: o.Challenge, Err: err}
		}
		closer = srv.Close
		iss.Solvers = map[string]solver.Solver{acmeca.HTTP01: s}
	case acmeca.TLSALPN01:
		s := &tlsalpn01.Solver{Logger: o.Logger}
		srv, err := s.Listen(o.TLSALPNAddr)
		if err != nil {
			return nil, &ListenError{Addr: o.TLSALPNAddr, Challenge: o.Challenge, Err: err}
		}
		closer = srv.Close
		iss.Solvers = map[string]solver.Solver{acmeca.TLSALPN01: s}
	case acmeca.DNS01, acmeca.DNSPersist01:
		closer = func() error { return nil }
		iss.Solvers = map[string]solver.Solver{acmeca.DNSPersist01: &dns01.Persist{Resolver: o.DNSResolver}}
		if o.Challenge == acmeca.DNS01 {
			if o.DNS01 == nil {
				return nil, fmt.Errorf("engine: dns-01 without a DNS01 solver")
			}
			o.DNS01.Logger = o.Logger
			iss.Solvers[acmeca.DNS01] = o.DNS01
		}
	default:
		return nil, fmt.Errorf("engine: challenge %w", CheckChallenge(o.Challenge))
	}
	return func() { _ = closer() }, nil
}

// ListenError is a challenge listener that could not start.
type ListenError struct {
	Addr, Challenge string
	Err             error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listening on %s for %s: %v", e.Addr, e.Challenge, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// CheckDNS asks iss's dns-01 solver, if it has one (Listen gave it
// OneShot.DNS01), whether each name's record can be set
// (dns01.Solver.Check), setting nothing: a wrong key, zone or DNS server
// then fails before an order is placed, rather than after, once per
// attempt. When dns-persist-01 is iss's one challenge, it checks that
// each name's record is in place for the CA and account
// (dns01.Persist.Check; a *dns01.PersistError if not), which takes the
// account, registering it if there is none yet. An issuer with neither
// passes, and so does dns-persist-01 at a CA whose directory lists no
// issuer domain names (the order's challenges then say which).
func CheckDNS(ctx context.Context, iss issuer.Issuer, names []string) error {
	a, ok := iss.(*acmeca.Issuer)
	if !ok {
		return nil
	}
	if p, ok := a.Solvers[acmeca.DNSPersist01].(*dns01.Persist); ok && len(a.Solvers) == 1 {
		return checkPersist(ctx, a, p, names)
	}
	s, ok := a.Solvers[acmeca.DNS01].(*dns01.Solver)
	if !ok {
		return nil
	}
	for _, name := range names {
		if err := s.Check(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// checkPersist is CheckDNS for an issuer whose one solver is p.
func checkPersist(ctx context.Context, a *acmeca.Issuer, p *dns01.Persist, names []string) error {
	issuers, err := a.IssuerDomainNames(ctx)
	if err != nil {
		return nil // no list to check against before ordering
	}
	acct, err := a.Account(ctx)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := p.Check(ctx, name, issuers, acct.Location); err != nil {
			return err
		}
	}
	return nil
}
