package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrDenied is wrapped by every error with which a Policy refuses a name,
// so callers tell "not allowed" from "could not decide" with errors.Is.
var ErrDenied = errors.New("name denied by policy")

// ErrPrivateAddress is wrapped, besides ErrDenied, by RequireOwnIP's
// refusal of a name that resolves to a loopback, link-local or private
// address while AllowPrivate is false.
var ErrPrivateAddress = errors.New("not a public address")

// Policy decides whether a name may have a certificate. It is consulted
// only for names that have no certificate yet, before any storage lock or
// CA traffic, so it is where an SNI flood of unknown names stops.
type Policy interface {
	// Decide returns nil if name may have a certificate. name has been
	// normalised (hostname.Normalize or a hostname.Normalizer). A refusal wraps ErrDenied
	// and names the name, even when the policy could not get an answer
	// (an ask URL that does not answer: unknown means no). Any other
	// error (ctx ended while deciding) also means "no", with a
	// different cause.
	Decide(ctx context.Context, name string) error
}

// clientCtxKey is the context key under which WithClient keeps a client's
// address.
type clientCtxKey struct{}

// WithClient returns a copy of ctx that carries addr, the address of the
// client whose request a decision is for (a handshake's remote address).
// The Manager passes it to Decide for the handshakes that ask about a new
// name; a Policy reads it with Client. AskURL shares its questions in
// flight between clients by it.
func WithClient(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientCtxKey{}, addr)
}

// Client returns the client address WithClient put in ctx, if any: a
// decision for a renewal, or one not made for a connection, has none.
func Client(ctx context.Context) (netip.Addr, bool) {
	addr, ok := ctx.Value(clientCtxKey{}).(netip.Addr)
	return addr, ok && addr.IsValid()
}

// Func adapts a function to Policy, as http.HandlerFunc does for handlers.
type Func func(ctx context.Context, name string) error

// Decide returns f(ctx, name).
func (f Func) Decide(ctx context.Context, name string) error { return f(ctx, name) }

// All returns a Policy that allows a name only if every one of policies
// allows it. They are asked in the order given, and the first refusal is
// returned as it is, without asking the rest: list the cheap, local
// policies first (Allowlist) and those that cost a network round trip
// last (AskURL, RequireOwnIP), so that a name the allowlist refuses
// causes no HTTP request or DNS query. All checks ctx between policies,
// so a handshake that has gone away stops the chain.
//
// All with no policies refuses every name: an empty configuration must
// fail closed, not allow the world. A nil policy is a programming error
// and panics here rather than at the first handshake.
func All(policies ...Policy) Policy {
	checkNil("All", policies)
	return all(slices.Clone(policies))
}

type all []Policy

// Decide asks each policy in turn and returns the first refusal.
func (ps all) Decide(ctx context.Context, name string) error {
	if len(ps) == 0 {
		return fmt.Errorf("%w: %s: no policy configured", ErrDenied, name)
	}
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deciding %s: %w", name, err)
		}
		if err := p.Decide(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// Any returns a Policy that allows a name if one of policies allows it:
// for example a fixed Allowlist of an operator's own names, then an
// AskURL for customers' names. They are asked in the order given until
// one allows, so list the cheap ones first here too. If none allows, the
// error joins every refusal (errors.Join), so errors.Is(err, ErrDenied)
// holds if any of them was a refusal.
//
// Any with no policies refuses every name; a nil policy panics, as in All.
func Any(policies ...Policy) Policy {
	checkNil("Any", policies)
	return anyOf(slices.Clone(policies))
}

type anyOf []Policy

// Decide asks each policy in turn until one allows.
func (ps anyOf) Decide(ctx context.Context, name string) error {
	if len(ps) == 0 {
		return fmt.Errorf("%w: %s: no policy configured", ErrDenied, name)
	}
	var errs []error // built only on the way to a refusal
	for _, p := range ps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deciding %s: %w", name, err)
		}
		err := p.Decide(ctx, name)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkNil(fn string, policies []Policy) {
	for i, p := range policies {
		if p == nil {
			panic(fmt.Sprintf("policy.%s: policy %d is nil", fn, i))
		}
	}
}
