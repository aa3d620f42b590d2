// Package solver defines how certkeeper answers ACME challenges: a Solver
// makes a challenge answerable (Present) and tidies up afterwards
// (CleanUp). The sub-packages hold the solvers: http01 (an http.Handler and
// a standalone listener), tlsalpn01 (a challenge-certificate table for
// any GetCertificate, and a standalone listener), dns01 (dns-01
// through a libdns DNS provider, and dns-persist-01).
//
// Solvers that see the CA's validation request arrive implement Answerer,
// which lets the issuer poll the CA the moment it has been answered instead
// of sleeping a fixed interval: that is most of the speed difference
// between certkeeper and clients that sleep between polls.
package solver

import (
	"context"

	"github.com/mholt/acmez/v3/acme"
)

// Solver presents and cleans up one kind of challenge.
type Solver interface {
	// Present makes chal answerable. It returns once the CA may validate,
	// or, for a solver that is also a Waiter, once its Wait can tell.
	Present(ctx context.Context, chal acme.Challenge) error
	// CleanUp removes what Present set up. It is called after validation,
	// whether it succeeded or not.
	CleanUp(ctx context.Context, chal acme.Challenge) error
}

// Answerer is implemented by solvers that see the CA's validation request.
type Answerer interface {
	// Answered returns a channel that is closed once the challenge has been
	// served to a validator at least once since Present.
	Answered(chal acme.Challenge) <-chan struct{}
}

// Waiter is implemented by solvers whose Present only starts the work: a
// DNS record is set at once but reaches every authoritative nameserver
// later. The issuer presents every challenge of an order first, then calls
// Wait for each, then asks the CA to validate, so the records of one order
// propagate together instead of one after the other.
type Waiter interface {
	// Wait returns once the CA may validate chal, which Present has set up.
	Wait(ctx context.Context, chal acme.Challenge) error
}

// Authorization is what a Chooser is told about the authorization a
// challenge belongs to, beyond the challenge itself.
type Authorization struct {
	// Account is the URL of the ACME account that placed the order.
	Account string
	// Wildcard reports whether the order asked for "*." + the identifier.
	Wildcard bool
}

// Chooser is implemented by solvers that can answer their challenge type
// only for some authorizations: a dns-persist-01 solver only where the
// persistent record is already in place. The issuer asks before it picks
// the challenge; false moves on to the next type in its preference order.
type Chooser interface {
	Choose(ctx context.Context, chal acme.Challenge, authz Authorization) (bool, error)
}
