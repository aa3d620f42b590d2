package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/certkeeper/certkeeper/doctor"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/cmdline"
)

func doctorCmd() *Command {
	var name string
	var dc dnsConfig
	var cf caFlags
	var sf storageFlags
	var addrs cmdline.Strings
	var asJSON bool
	return &Command{
		UsageLine: "certkeeper doctor -d NAME [flags]",
		Short:     "check what would stop a certificate for NAME from being issued",
		Long: `Doctor checks, without ordering anything, what usually breaks issuance: NAME resolves; each
--addr is reachable through NAME's addresses (a one-time token served on --addr and fetched
through the resolved address: this proves the path from here, not from the Internet, where
the CA is); CAA records allow the CA; the CA is reachable; the clock agrees with the CA's;
--storage is writable, and its server (Redis, PostgreSQL) persists what it stores; the
account there (if any) is valid; with --dns, the provider may set NAME's dns-01 record (asked
without setting it). Each failure says what to do.

	certkeeper doctor -d a.example --addr :443 --addr :80
	certkeeper doctor -d '*.a.example' --dns rfc2136 --dns-server ns1.a.example:53 --tsig-key-file /etc/certkeeper/tsig.key
	certkeeper doctor -d a.example --ca staging --json

Exit status 1 when a check fails.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "d", "", "the `NAME` to check")
			fs.Var(&addrs, "addr", "`ADDR` certkeeper answers challenges on (e.g. :443, :80), checked by connecting back;\nrepeatable (default: none)")
			cf.register(fs, caEmail)
			cmdline.Bind(fs, &sf)
			cmdline.Bind(fs, &dc) // --dns-resolver is asked for the name too (the first one)
			cmdline.Deprecated(fs, "resolver", "dns-resolver", nil)
			fs.BoolVar(&asJSON, "json", false, "print JSON: a list of {check, status, detail, fix}")
		},
		ArgsHint: "the name goes with -d (e.g. -d a.example)",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if name == "" {
				return usagef("doctor needs -d NAME")
			}
			norm, err := (&hostname.Normalizer{AllowWildcard: true}).Normalize(name)
			if err != nil {
				return usagef("-d %s: %v", name, err)
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			cfg := doctor.Config{Name: norm, Addrs: addrs, Storage: st}
			if len(dc.Resolvers) > 0 {
				cfg.Resolver = dc.Resolvers[0]
			}
			if dc.Provider != "" {
				if cfg.DNS01, err = dc.solver(env); err != nil {
					return err
				}
			}
			if !cf.local() { // the local CA: only the storage is checked
				iss, err := cf.acmeIssuer(env, cf.ca(), st)
				if err != nil {
					return err
				}
				cfg.DirectoryURL, cfg.HTTPClient, cfg.Email = iss.DirectoryURL, iss.HTTPClient, iss.Email
			}
			results := doctor.Run(ctx, cfg)
			if err := doctor.Write(env.Stdout, results, asJSON); err != nil {
				return err
			}
			if failed := doctor.Failures(results); failed > 0 {
				return fmt.Errorf("%d of %d checks failed for %s; each says what to do", failed, len(results), norm)
			}
			return nil
		},
	}
}
