package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper/migrate"
)

func importCmd() *Command {
	var from, ca string
	var sf storageFlags
	var dryRun bool
	return &Command{
		UsageLine: "certkeeper import --from TOOL [flags] DIR",
		Short:     "take over the certificates and accounts of certbot, lego, acme.sh, dehydrated or Caddy",
		Long: `Import reads another ACME client's state in DIR and stores its certificates, their keys and
its ACME accounts in certkeeper's --storage. The certificates are served at once (no new order)
and renewed later from the same account, so the CA accepts the renewal as their ARI replacement.
DIR is never modified. Each entry is checked whole first (key matches certificate, account has
key and URL); a damaged one is reported and skipped. Importing twice changes nothing.

	certkeeper import --from certbot /etc/letsencrypt
	certkeeper import --from lego --ca https://acme-v02.api.letsencrypt.org/directory ~/.lego
	certkeeper import --from acme.sh ~/.acme.sh
	certkeeper import --from dehydrated /var/lib/dehydrated
	certkeeper import --from caddy ~/.local/share/caddy

See first what would be imported, and what cannot be and why:

	certkeeper import --from certbot --dry-run /etc/letsencrypt

Accounts are stored under their contact email: run certkeeper with the same --email (or none,
for an account without one). docs/migrate.md says what carries over from each tool.
Exit status: 0 all imported (or unchanged), 1 something was skipped or failed, 2 bad usage.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "the `TOOL` whose state DIR holds: "+strings.Join(migrate.Tools(), ", "))
			sf.register(fs)
			fs.StringVar(&ca, "ca", "", "ACME directory `URL` of the CA, for state that does not record it (lego), or to\nimport only what comes from that CA")
			fs.BoolVar(&dryRun, "dry-run", false, "list what would be imported and what cannot be, and change nothing")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 {
				return usagef("give the tool's directory, e.g. certkeeper import --from certbot /etc/letsencrypt")
			}
			if from == "" {
				return usagef("--from is required: one of %s", strings.Join(migrate.Tools(), ", "))
			}
			if ca != "" {
				ca = caURL(ca)
			}
			state, err := migrate.Read(from, args[0], migrate.Options{DirectoryURL: ca})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			actions, err := migrate.Import(ctx, st, state, dryRun)
			printImport(env, actions)
			if err != nil {
				return err
			}
			skipped := 0
			for _, a := range actions {
				if a.Result == migrate.Skipped {
					skipped++
				}
			}
			if len(actions) == 0 {
				return fmt.Errorf("found no certificates or accounts of %s in %s", from, args[0])
			}
			if skipped > 0 {
				return fmt.Errorf("%d of %d entries could not be imported (see above)", skipped, len(actions))
			}
			return nil
		},
	}
}

// printImport writes one line per entry: result, kind, subject, source,
// and why for what was skipped.
func printImport(env *Env, actions []migrate.Action) {
	tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tKIND\tSUBJECT\tSOURCE\tWHY")
	for _, a := range actions {
		subject := a.Subject
		if subject == "" {
			subject = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Result, a.Kind, subject, a.Source, a.Why)
	}
	tw.Flush()
}
