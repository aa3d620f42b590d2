package cli

import (
	"errors"
	"io/fs"
	"strings"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/dns01/powerdns"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
	"github.com/certkeeper/certkeeper/storage/pgstore"
)

// hintError is a library error with what to do on the command line: the
// libraries name their own fields (Issuer.EAB, Resolver.Zones), not our
// flags. Its message has dns01's field names replaced by their flags
// (dnsFields); hint is "" when that says it all.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string {
	msg := dnsFields.Replace(e.err.Error())
	if e.hint == "" {
		return msg
	}
	return msg + "; on the command line: " + e.hint
}
func (e *hintError) Unwrap() error { return e.err }

// dnsFields are the flags of the dns01 fields its errors name. Read only.
var dnsFields = strings.NewReplacer("Resolver.Servers", "--dns-resolver", "Resolver.Primary", "--dns-server",
	"Resolver.Zones", "--dns-zone", "Resolver.AuthoritativePort", "--dns-check-port",
	"SkipPropagationCheck", "--dns-no-check", "PropagationTimeout", "--dns-timeout", "Provider.Server", "--dns-server")

// withFlagHints adds to err the flags that change what it names, for the
// library errors that name a field; other errors are returned as they are.
func withFlagHints(err error) error {
	if err == nil || errors.As(err, new(*hintError)) {
		return err
	}
	// What to do is in their messages, in the fields' flags.
	if errors.As(err, new(*dns01.ZoneError)) || errors.As(err, new(*dns01.PropagationError)) {
		return &hintError{err: err}
	}
	if pe := (*dns01.PersistError)(nil); errors.As(err, &pe) && pe.Expired > 0 && len(pe.Others) == 0 {
		return &hintError{err: err, hint: "run certkeeper dns-persist-record -d NAME with this --storage and a later --until (or none)"}
	}
	for _, h := range sentinelHints {
		if errors.Is(err, h.err) {
			return &hintError{err: err, hint: h.hint}
		}
	}
	return err
}

// withLogHints is withFlagHints for a running process's log: an outage
// (the CA or a DNS server unreachable) is logged without its hint, which
// ended every line of one with advice to check flags that had worked a
// minute before (a soak trial: 391 lines), and so is a path it may not
// use, whose fix for a service is a chown, not sudo -u (a trial).
func withLogHints(err error) error {
	if errors.Is(err, acmeca.ErrUnreachable) && !errors.Is(err, acmeca.ErrCANotTrusted) || errors.Is(err, rfc2136.ErrUnreachable) ||
		errors.Is(err, powerdns.ErrUnreachable) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	if errors.Is(err, issuer.ErrNameRejected) && !errors.As(err, new(*hintError)) { // a service takes no -d (an ops trial)
		return &hintError{err: err, hint: "leave the name out of --allow (or the config's allow list): no retry changes the CA's answer"}
	}
	return withFlagHints(err)
}

// sentinelHints are the flags for the library sentinel errors that name a
// field, the first match winning. Read only.
var sentinelHints = []struct {
	err  error
	hint string
}{
	{acmeca.ErrCANotTrusted, "give --ca-roots FILE with the root of the CA's HTTPS certificate (a private or test CA), or check --ca"},
	{acmeca.ErrUnreachable, "check --ca, and HTTPS_PROXY or a firewall if this host reaches the web through one"},
	{rfc2136.ErrUnreachable, "check --dns-server (the primary's host:port); the DNS server may be down"},
	{powerdns.ErrNoAPIServer, "give --dns-api-url as the API's base URL, e.g. http://127.0.0.1:8081 (the server ID is always localhost, an authoritative server's)"},
	{rfc2136.ErrBadKey, "the key's name and algorithm are those of --tsig-key-file (or --tsig-key): compare them with the server's key, and its update ACL for the zone"},
	{rfc2136.ErrNotAuthoritative, "check --dns-server (the zone's primary), and the zone (--dns-zone, or the CNAME on _acme-challenge)"},
	{powerdns.ErrUnreachable, "check --dns-api-url (the API's base URL, e.g. http://127.0.0.1:8081); the PowerDNS server may be down"},
	{issuer.ErrNameRejected, "leave the name out of -d and --allow (or the config's allow list): no retry changes the CA's answer"},
	{acmeca.ErrNotDirectory, "check --ca: an ACME directory URL, or letsencrypt, staging or local"},
	{acmeca.ErrEABRequired, "give them with --eab-kid and --eab-hmac"},
	{acmeca.ErrAccountDeactivated, "use another --email (a new account is registered)"},
	{dns01.ErrNoPersistRecord, "run certkeeper dns-persist-record -d NAME with this --storage (with --policy-wildcard for a wildcard), or choose another --challenge"},
	{acmeca.ErrNoChallenge, "choose one it offers with --challenge"},
	{acmeca.ErrWildcardNeedsDNS, "give a DNS provider with --dns (dns-01), or --challenge dns-persist-01"},
	{pgstore.ErrPasswordInURL, "give the password in a file with --storage-password-file"},
	{pgstore.ErrAuthentication, "give the password with --storage-password-file FILE (or PGPASSWORD), and check the user in the URL"},
	{policy.ErrPrivateAddress, "for an internal CA that reaches it, add --own-ip-private"},
	{certkeeper.ErrNoSNI, "give --default-name NAME (proxy) to serve such clients that name's certificate"},
	// Last: a permission error may wrap any of the above.
	{fs.ErrPermission, "run certkeeper as the user who owns that path (e.g. with sudo -u), or give the flag that names it (--storage, --out-dir, ...) a path this user may use"},
}
