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
