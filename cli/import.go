package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/migrate"
	"github.com/certkeeper/certkeeper/storage"
)

func importCmd() *Command {
	var from, ca, caRoots string
	var sf storageFlags
	var dryRun, overwrite bool
	return &Command{
		UsageLine: "certkeeper import --from TOOL [flags] DIR",
		Short:     "take over the certificates and accounts of certbot, lego, acme.sh, dehydrated or Caddy",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "the `TOOL` whose state DIR holds: "+strings.Join(migrate.Tools(), ", "))
			cmdline.Bind(fs, &sf)
			fs.StringVar(&ca, "ca", "", "ACME directory `URL` of the CA, for state that does not record it (lego), or to\nimport only what comes from that CA")
			fs.StringVar(&caRoots, "chain-roots", "", "PEM `FILE` of roots to trust, besides the system's and the local CA's, when verifying\nthe chains of the certificates imported (the root a private CA issues under)")
			cmdline.Deprecated(fs, "ca-roots", "chain-roots", nil) // --ca-roots is the CA's HTTPS root elsewhere
			fs.BoolVar(&overwrite, "overwrite", false, "replace certificates stored for the same names (and CA) with the imported ones,\neven ones that expire later; without it they are kept")
			fs.BoolVar(&dryRun, "dry-run", false, "list what would be imported, replaced (with --overwrite) and what cannot be, and\nchange nothing")
		},
		TakesArgs: true,
		Run: func(ctx context.Context, env *Env, args []string) error {
			// "import certbot DIR", as one says it, is "import --from certbot DIR".
			if len(args) == 2 && (from == "" || from == args[0]) && slices.Contains(migrate.Tools(), args[0]) {
				from, args = args[0], args[1:]
			}
			if len(args) != 1 {
				return usagef("give the tool's directory, e.g. certkeeper import --from certbot /etc/letsencrypt")
			}
			if err := migrate.CheckTool(from); err != nil {
				return usagef("%v", err) // a typo in the tool's name is bad usage (2), as any other
			}
			if ca != "" {
				ca = engine.CAURL(ca)
			}
			ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			roots, err := importRoots(ctx, st, caRoots)
			if err != nil {
				return err
			}
			state, err := migrate.Read(from, args[0], migrate.Options{DirectoryURL: ca, Roots: roots})
			if err != nil {
				return err
			}
			actions, err := migrate.Import(ctx, st, state, migrate.ImportOptions{DryRun: dryRun, Overwrite: overwrite})
			migrate.WriteActions(env.Stdout, actions)
			if err != nil {
				return err
			}
			return migrate.Outcome(from, args[0], actions)
		},
	}
}

// importRoots are the roots imported chains must verify against
// (migrate.TrustedRoots), with those in file (--chain-roots).
func importRoots(ctx context.Context, st storage.Storage, file string) (*x509.CertPool, error) {
	var extra []byte
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--chain-roots: %w", err)
		}
		extra = data
	}
	pool, err := migrate.TrustedRoots(ctx, st, extra)
	if errors.Is(err, migrate.ErrNoRoots) {
		return nil, fmt.Errorf("--chain-roots %s: %w", file, err)
	}
	return pool, err
}
