package cli

import (
	"errors"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/storage/pgstore"
)

// hintError is a library error with what to do on the command line: the
// libraries name their own fields (Issuer.EAB, Resolver.Zones), not our
// flags.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + "; on the command line: " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// withFlagHints adds to err the flags that change what it names, for the
// library errors that name a field; other errors are returned as they are.
func withFlagHints(err error) error {
	var zerr *dns01.ZoneError
	var hint string
	switch {
	case err == nil || errors.As(err, new(*hintError)):
		return err
	case errors.As(err, &zerr):
		hint = "name the zone with --dns-zone, or point --dns-resolver or --dns-server at a server that knows it"
	case errors.Is(err, acmeca.ErrUnreachable):
		hint = "check --ca, and give --ca-roots FILE for a CA whose HTTPS certificate has a private root"
	case errors.Is(err, acmeca.ErrEABRequired):
		hint = "give --eab-kid and --eab-hmac (from your CA account)"
	case errors.Is(err, acmeca.ErrAccountDeactivated):
		hint = "use another --email (a new account is registered)"
	case errors.Is(err, acmeca.ErrNoChallenge):
		hint = "choose one it offers with --challenge"
	case errors.Is(err, acmeca.ErrWildcardNeedsDNS):
		hint = "give --challenge dns-01 with a DNS provider (--dns)"
	case errors.Is(err, pgstore.ErrPasswordInURL):
		hint = "give the password in a file with --storage-password-file"
	case errors.Is(err, policy.ErrPrivateAddress):
		hint = "for an internal CA that reaches it, add --own-ip-private"
	default:
		return err
	}
	return &hintError{err: err, hint: hint}
}
