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
		UsageLine: "certkeeper doctor [-d] NAME [flags]",
		Short:     "check what would stop a certificate for NAME from being issued",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "d", "", "the `NAME` to check")
			fs.Var(&addrs, "addr", "`ADDR` certkeeper answers challenges on (e.g. :443, :80), checked by connecting back;\nrepeatable (default: none)")
			cf.register(fs, caEmail|caLocal)
			cmdline.Bind(fs, &sf)
			cmdline.Bind(fs, &dc) // --dns-resolver is asked for the name too (the first one)
			cmdline.Deprecated(fs, "resolver", "dns-resolver", nil)
			fs.BoolVar(&asJSON, "json", false, "print JSON: a list of {check, status, detail, fix}")
		},
		TakesArgs: true, // the name, as -d or as the argument (dig's and curl's habit)
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 1 || len(args) == 1 && name != "" {
				return usagef("doctor checks one name at a time: give it as -d NAME or as the argument, not %q", args)
			} else if len(args) == 1 {
				name = args[0]
			}
			if name == "" {
				return usagef("doctor needs a NAME: certkeeper doctor a.example")
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
			for i := range results { // the library's field names as this command's flags
				results[i].Detail = dnsFields.Replace(results[i].Detail)
			}
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
