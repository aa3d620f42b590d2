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
// that changes it, once; other errors pass as they are.
func TestWithFlagHints(t *testing.T) {
	for _, tt := range []struct {
		err  error
		flag string
	}{
		{&dns01.ZoneError{}, "--dns-zone"},
		{&dns01.PropagationError{Lacking: []string{"ns1"}}, "--dns-timeout"},
		{&dns01.PropagationError{Lacking: []string{"ns1"}, Refusing: []string{"ns1"}}, "--dns-check-port sets the port the nameservers are asked on; --dns-resolver"},
		{&dns01.PropagationError{Lacking: []string{"ns1"}, Unreachable: []string{"ns2"}}, "--dns-no-check skips the check (split horizon); --dns-timeout"},
		{&dns01.PersistError{Expired: 1}, "dns-persist-record -d NAME with this --storage and a later --until"},
		{rfc2136.ErrBadKey, "name and algorithm are those of --tsig-key-file"},
		{rfc2136.ErrNotAuthoritative, "check --dns-server"},
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
		if msg := err.Error(); !strings.Contains(msg, "; on the command line: ") || !strings.Contains(msg, tt.flag) {
			t.Errorf("%T %v: %q, want a hint naming %s", tt.err, tt.err, msg, tt.flag)
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
