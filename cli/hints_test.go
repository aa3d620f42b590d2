package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/dns01/powerdns"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
	"github.com/certkeeper/certkeeper/storage/pgstore"
)

// TestWithFlagHints: each library error that names a field gets the flag
// that changes it, once (dns01's errors, which say what to do, have their
// fields named by their flags instead); other errors pass as they are.
func TestWithFlagHints(t *testing.T) {
	for _, tt := range []struct {
		err  error
		flag string
	}{
		// dns01's errors say what to do with its fields: named by their flags.
		{&dns01.ZoneError{}, "name the zone in --dns-zone, or point --dns-resolver or --dns-server at a server"},
		{&dns01.ZoneError{NoAnswer: true, Primary: "10.0.0.53:53", Err: errors.New("connection refused")}, "and the primary 10.0.0.53:53 (--dns-server)"},
		{&dns01.PropagationError{Lacking: []string{"ns1"}}, "raise --dns-timeout"},
		{&dns01.PropagationError{}, "the resolvers (--dns-resolver) do not know them; for a zone that only its primary serves give --dns-server, which is asked too, or --dns-no-check"},
		{&dns01.PropagationError{Lacking: []string{"ns1"}, Refusing: []string{"ns1"}}, "--dns-check-port sets the port they are asked on; their addresses are those of the zone's NS records, as the resolvers (--dns-resolver)"},
		{&dns01.PropagationError{Lacking: []string{"ns1"}, Unreachable: []string{"ns2"}}, "--dns-no-check skips the check where they cannot be reached from here (split horizon)"},
		{&dns01.PersistError{Expired: 1}, "dns-persist-record -d NAME with this --storage and a later --until"},
		{rfc2136.ErrBadKey, "name and algorithm are those of --tsig-key-file"},
		{rfc2136.ErrNotAuthoritative, "check --dns-server"},
		{fmt.Errorf("%w: is the zone on this primary (Provider.Server)?", rfc2136.ErrNotAuthoritative), "on this primary (--dns-server)"},
		{acmeca.ErrUnreachable, "check --ca, and HTTPS_PROXY"}, // connection refused: --ca-roots would not help
		{fmt.Errorf("%w: %w", acmeca.ErrUnreachable, acmeca.ErrCANotTrusted), "--ca-roots"},
		{issuer.ErrNameRejected, "--allow"},
		{acmeca.ErrEABRequired, "--eab-kid"},
		{acmeca.ErrAccountDeactivated, "--email"},
		{acmeca.ErrNoChallenge, "--challenge"},
		{fmt.Errorf("%w: %w", acmeca.ErrNoChallenge, dns01.ErrNoPersistRecord), "dns-persist-record -d NAME with this --storage"},
		{rfc2136.ErrUnreachable, "--dns-server"},
		{powerdns.ErrNoAPIServer, "--dns-api-url as the API's base URL, e.g. http://127.0.0.1:8081 (the server ID is always localhost"},
		{powerdns.ErrUnreachable, "--dns-api-url"},
		{acmeca.ErrWildcardNeedsDNS, "--dns (dns-01)"},
		{pgstore.ErrPasswordInURL, "--storage-password-file"},
		{pgstore.ErrAuthentication, "--storage-password-file FILE (or PGPASSWORD)"},
		{policy.ErrPrivateAddress, "--own-ip-private"},
		{fs.ErrPermission, "sudo -u"},
	} {
		err := withFlagHints(fmt.Errorf("doing something: %w", tt.err))
		if !errors.Is(err, tt.err) && !errors.As(err, new(*dns01.ZoneError)) {
			t.Errorf("%v: the hint lost the error", tt.err)
		}
		_, dnsErr := tt.err.(interface{ NotFound() bool })
		_, zoneErr := tt.err.(*dns01.ZoneError)
		dnsErr = dnsErr || zoneErr
		if msg := err.Error(); !(dnsErr || strings.Contains(msg, "; on the command line: ")) || !strings.Contains(msg, tt.flag) {
			t.Errorf("%T %v: %q, want a hint naming %s", tt.err, tt.err, msg, tt.flag)
		} else if strings.Contains(msg, "Resolver.") || strings.Contains(msg, "Provider.") || strings.Contains(msg, "Propagation") {
			t.Errorf("%T: %q names a Go field, not its flag", tt.err, msg)
		}
		if again := withFlagHints(err); again != err {
			t.Errorf("%v: hinted twice: %q", tt.err, again)
		}
	}
	plain := errors.New("plain")
	if got := withFlagHints(plain); got != plain {
		t.Errorf("withFlagHints(plain) = %v, want it unchanged", got)
	}
	if withFlagHints(nil) != nil {
		t.Error("withFlagHints(nil) != nil")
	}
}

// TestWithLogHints: a running process logs an outage (the CA or a DNS
// server unreachable) without a hint to check the flags, which ended
// every line of a soak trial's outages; a CA whose certificate is not
// trusted, a configuration error, keeps its hint.
func TestWithLogHints(t *testing.T) {
	for _, err := range []error{acmeca.ErrUnreachable, rfc2136.ErrUnreachable, powerdns.ErrUnreachable, fs.ErrPermission} {
		if msg := withLogHints(fmt.Errorf("renewing: %w", err)).Error(); strings.Contains(msg, "on the command line") {
			t.Errorf("an outage or a path it may not use is logged with a hint: %s", msg)
		}
	}
	for _, err := range []error{fmt.Errorf("%w: %w", acmeca.ErrUnreachable, acmeca.ErrCANotTrusted), acmeca.ErrEABRequired} {
		if msg := withLogHints(fmt.Errorf("renewing: %w", err)).Error(); !strings.Contains(msg, "on the command line") {
			t.Errorf("a configuration error is logged without its hint: %s", msg)
		}
	}
	// A proxy or server takes no -d: a name the CA refuses is taken out
	// of allow (an ops trial's hint named cert issue's -d).
	if msg := withLogHints(fmt.Errorf("issuing: %w", issuer.ErrNameRejected)).Error(); !strings.Contains(msg, "leave the name out of --allow") || strings.Contains(msg, "-d ") {
		t.Errorf("a name the CA refuses is logged as %q, want a hint naming --allow, not -d", msg)
	}
}
