package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver/dns01"
)

func dnsPersistRecordCmd() *Command {
	var (
		f        issueFlags
		wildcard bool
		until    string
		issuerDN string
	)
	return &Command{
		UsageLine: "certkeeper dns-persist-record -d NAME [--policy-wildcard] [--until DATE] [flags]",
		Short:     "print (and set) the dns-persist-01 record that authorizes this account",
		Long: `Dns-persist-record prints the _validation-persist TXT record (draft-ietf-acme-dns-persist)
that authorizes certkeeper's ACME account at the CA to get certificates for NAME, with no DNS
change per order from then on. It registers the account first if there is none yet in --storage.
With --dns it also sets the record through that provider; without, add it at your DNS host:

	certkeeper dns-persist-record -d a.example --policy-wildcard
	_validation-persist.a.example. 3600 IN TXT "letsencrypt.org; accounturi=https://...; policy=wildcard"

Then "cert issue --challenge dns-persist-01" (or dns-01, which prefers the persistent record
where the CA offers dns-persist-01) issues for a.example without touching DNS. The record format
follows the draft that Pebble and Let's Encrypt accept today; see docs/dns.md.

Run again with --dns (another --policy-wildcard or --until), it replaces this account's record
for the CA on NAME, and leaves other accounts' and CAs' alone. To end an authorization, delete
its TXT value at the DNS host (nsupdate: update delete _validation-persist.NAME TXT "VALUE").`,
		Flags: func(fs *flag.FlagSet) {
			fs.Var(&f.names, "d", "the `NAME` to authorize; repeatable")
			fs.BoolVar(&wildcard, "policy-wildcard", false, "also authorize *.NAME (policy=wildcard); a deeper name (x.y.NAME) needs a record of its own")
			fs.StringVar(&until, "until", "", "end of the authorization (persistUntil): a `DATE` (2027-01-31 means its start, 00:00\nUTC), an RFC 3339 time, or a duration from now (365d); default: no end")
			fs.StringVar(&issuerDN, "issuer-domain", "", "the CA's issuer domain `NAME` to put in the record (default: the first the CA lists)")
			f.caFlags.register(fs, caEmail|caEAB)
			cmdline.Bind(fs, &f.storageFlags)
			f.timeout = 2 * time.Minute
			fs.Var((*cmdline.Duration)(&f.timeout), "timeout", "give up after this `DURATION`")
			cmdline.Bind(fs, &f.dns)
		},
		ArgsHint: "names go with -d",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(f.names) == 0 {
				return usagef("no names: give at least one with -d, e.g. -d a.example")
			}
			end, err := cmdline.ParseTime(until, time.Now())
			if err != nil {
				return usagef("--until %v", err)
			}
			if !end.IsZero() && !end.After(time.Now()) {
				return usagef("--until %s: %s is past; the record would authorize nothing", until, end.UTC().Format(time.RFC3339))
			}
			return dnsPersistRecord(ctx, env, &f, wildcard, end, issuerDN)
		},
	}
}

func dnsPersistRecord(ctx context.Context, env *Env, f *issueFlags, wildcard bool, until time.Time, issuerDN string) error {
	var names []string
	for _, raw := range f.names {
		if apex, ok := strings.CutPrefix(raw, "*."); ok {
			return usagef("-d %s: the record is set on a name and covers its wildcard with a policy: give -d %s --policy-wildcard", raw, apex)
		}
		n, err := hostname.Normalize(raw)
		if err != nil {
			return usagef("-d: %v", err)
		}
		names = append(names, n)
	}
	provider, err := f.dns.provider(env)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// The account the record authorizes is the one the proxy or server
	// orders with: wherever --storage keeps it, sealed or not.
	st, closeStorage, err := f.storageFlags.open(ctx, env)
	if err != nil {
		return err
	}
	defer closeStorage()
	iss, err := f.acmeIssuer(env, f.ca(), st)
	if err != nil {
		return err
	}
	recs, err := iss.PersistRecords(ctx, names, issuerDN, wildcard, until)
	var ierr *acmeca.IssuerDomainError
	if errors.As(err, &ierr) {
		return usagef("--issuer-domain %q: the CA lists %q", ierr.Given, ierr.Listed)
	}
	if err != nil {
		return err
	}
	persist := &dns01.Persist{Resolver: f.dns.resolver(), Provider: provider}
	for _, rec := range recs {
		fmt.Fprintln(env.Stdout, rec.String())
		if provider == nil {
			continue
		}
		if err := persist.Set(ctx, rec); err != nil {
			return fmt.Errorf("setting %s: %w", rec.FQDN(), err)
		}
		fmt.Fprintf(env.Stderr, "certkeeper: set %s through --dns %s\n", rec.FQDN(), f.dns.Provider)
	}
	return nil
}
