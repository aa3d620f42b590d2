package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/migrate"
	"github.com/certkeeper/certkeeper/storage"
)

// renewFlags are the flags of "cert renew": those of cert issue but -d,
// and the batch's own.
type renewFlags struct {
	issueFlags `bind:"-"`    // registerCA
	grace      string        `flag:"grace" arg:"DURATION" help:"renew what expires within this DURATION (e.g. 7d, 36h) instead of the usual rule"`
	force      bool          `flag:"force" help:"renew every pair, due or not"`
	dryRun     bool          `flag:"dry-run" help:"report what would be renewed and change nothing"`
	newKey     bool          `flag:"new-key" help:"give renewed certificates a new key (default: keep the key)"`
	want       string        `flag:"want" arg:"FILE" help:"FILE listing certificates to have: one per line, names separated by spaces"`
	only       cmdline.Names `flag:"d" arg:"NAME" help:"renew only the certificate for NAME (covering it, or named by it); repeatable"`
	quiet      bool          `flag:"quiet" help:"print nothing unless something fails, then everything (for cron, which mails any output;\ncertbot's -q)"`
	// hooks runs the remembered hooks of this run.
	hooks renew.Hooks
}

func certRenewCmd() *Command {
	f := &renewFlags{}
	return &Command{
		UsageLine: "certkeeper cert renew [flags]",
		Short:     "renew the certificate files that are due (for cron)",
		Flags: func(fs *flag.FlagSet) {
			f.fs = fs
			f.registerCA(fs)
			cmdline.Bind(fs, f)
			cmdline.Bind(fs, &f.hookFlags) // read back as flags given (settingsFromFlags)
		},
		ArgsHint:  "cert renew renews every due pair in --out-dir; to renew one certificate now: cert renew -d NAME --force",
		Spellings: renewSpellings,
		Run: func(ctx context.Context, env *Env, args []string) error {
			if !f.quiet {
				return renewFiles(ctx, env, f)
			}
			quiet, out := *env, &bytes.Buffer{}
			quiet.Stdout, quiet.Stderr, quiet.unquiet = out, out, env.Stderr
			err := renewFiles(ctx, &quiet, f)
			if err != nil {
				env.Stderr.Write(out.Bytes())
			}
			return err
		},
	}
}

// renewFiles runs "cert renew": the flags become a renew.Renewer, whose
// results become the summary and the exit status.
func renewFiles(ctx context.Context, env *Env, f *renewFlags) error {
	if err := f.defaultDirs(); err != nil {
		return err
	}
	if err := f.rememberedStorage(env, certfile.Dir(f.outDir)); err != nil {
		return err
	}
	r, err := f.renewer(env) // with the storage remembered: a certificate it writes remembers it too
	if err != nil {
		return err
	}
	r.Dir = certfile.Dir(f.outDir)
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	// A short lease: a run killed by cron's timeout (or SIGKILL) holds up
	// the next run by at most 5 s; a live run renews its lease every 1.7 s.
	st, closeStorage, err := openStorage(ctx, env, f.storageFlags, 5*time.Second)
	if err != nil {
		return err
	}
	defer closeStorage()
	r.Storage = st
	// Each certificate renews with its remembered settings (renewconf.go).
	r.Issuers = func(ctx context.Context, s renew.Settings) (*issuer.Chain, func(), error) {
		g, err := f.withSettings(s)
		if err != nil {
			return nil, nil, err
		}
		iss, closer, err := g.issuer(env, st)
		if err != nil {
			return nil, nil, err
		}
		return &issuer.Chain{Issuers: []issuer.Issuer{iss}}, closer, nil
	}
	r.Check = func(ctx context.Context, chain *issuer.Chain, names []string) error {
		return engine.CheckDNS(ctx, chain.Issuers[0], names) // one issuer: cert renew's chain
	}
	r.ARI = f.ariFor(env, st) // a dry run too: it says what the real run would do
	r.Explain = f.explain
	results, err := r.Run(ctx)
	// The post-hooks run on a context of their own: one interrupted or past
	// --timeout after a pre-hook must still stop what it started.
	post, cancelPost := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancelPost()
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--out-dir %s does not exist: give the directory cert issue wrote to", f.outDir)
	}
	if err != nil {
		return errors.Join(err, f.hooks.PostOwed(post))
	}
	return f.report(post, env, results)
}

// rememberedStorage opens, unless --storage is given, the storage the
// certificates in dir remember (renew.RememberedStorage): their accounts,
// and the local CA that signed theirs, are there, not in the default.
func (f *renewFlags) rememberedStorage(env *Env, dir certfile.Dir) error {
	if cmdline.Given(f.fs, "storage") {
		return nil
	}
	rs, err := renew.RememberedStorage(dir, f.only...)
	if err != nil {
		return fmt.Errorf("%w: give --storage for this run (each certificate it renews remembers it then), or renew them apart with -d NAME", err)
	}
	if rs.Storage != "" && rs.Storage != f.Storage {
		fmt.Fprintf(env.Stderr, "certkeeper: storage %s, which the certificates remember (--storage chooses another)\n", storageWhere(rs.Storage))
	}
	return errors.Join(rs.ApplyUnset(f.fs, renew.StorageKeys()...))
}

// renewer is the Renewer the flags describe, without its directory,
// storage and issuers.
func (f *renewFlags) renewer(env *Env) (*renew.Renewer, error) {
	grace, err := renew.ParseGrace(f.grace)
	if err != nil {
		return nil, usagef("--grace: %v", err)
	}
	if _, err := issuer.ParseKeyType(f.KeyType); err != nil {
		return nil, usagef("--key-type: %v", err)
	}
	override, err := settingsFromFlags(f.fs)
	if err != nil {
		return nil, err
	}
	want, err := readWant(f.want)
	if err != nil {
		return nil, err
	}
	r := &renew.Renewer{
		Override: override, NewKey: f.newKey, Grace: grace, Force: f.force, DryRun: f.dryRun, Want: want, Only: f.only,
		Progress: func(name, step string) { fmt.Fprintf(env.Stderr, "certkeeper: %s: %s\n", name, step) },
	}
	// Hooks are remembered per certificate (renew.Hooks).
	f.hooks = renew.Hooks{Output: env.Stderr}
	r.BeforeRenew, r.AfterRenew = f.hooks.BeforeRenew, f.hooks.AfterRenew
	return r, nil
}

// explain words a renewal's error with the flags of what it names, for
// the summary and the failure kept in storage (status reads it).
func (f *renewFlags) explain(err error) string {
	return withFlagHints(explainIssueError(err, &f.issueFlags)).Error()
}

// report runs each post-hook of the certificates tried once, prints the
// summary and turns failures into the exit status.
func (f *renewFlags) report(ctx context.Context, env *Env, results []*renew.Result) error {
	failed := renew.Failures(results, f.explain)
	if err := f.hooks.Post(ctx, results); err != nil {
		renew.WriteSummary(env.Stdout, results)
		return fmt.Errorf("the post-hook failed (the summary says what was renewed): %w", err)
	}
	if len(results) == 0 { // a cron job renewing nothing is misconfigured: fail
		if conf, ok := migrate.CertbotConfigDir(f.outDir); ok {
			return fmt.Errorf("nothing to renew: %s belongs to certbot (live/, renewal/), whose files cert renew does not renew: take them over with certkeeper import --from certbot %s (docs/migrate.md)", f.outDir, conf)
		}
		return fmt.Errorf("nothing to renew: no certificate pairs (certs/NAME.pem with private/NAME.key) in %s; is --out-dir right?", f.outDir)
	}
	renew.WriteSummary(env.Stdout, results)
	if failed > 0 {
		return fmt.Errorf("%d of %d certificates failed or could not be read (see the summary)", failed, len(results))
	}
	return nil
}

// ariFor returns what renewals ask for each CA's renewal window: one
// ACME client per directory (ARI needs only the directory; the challenge
// listener starts with Issuers), none for the local CA.
func (f *renewFlags) ariFor(env *Env, st storage.Storage) func(renew.Settings) renew.RenewalInfoer {
	clients := map[string]*acmeca.Issuer{}
	return func(s renew.Settings) renew.RenewalInfoer {
		g, err := f.withSettings(s)
		if err != nil || g.local() {
			return nil
		}
		k := engine.CAURL(g.ca()) + "\n" + g.CARoots
		if c, ok := clients[k]; ok {
			return c
		}
		c, err := g.acmeIssuer(env, g.ca(), st)
		if err != nil {
			return nil // the renewal itself reports it
		}
		clients[k] = c
		return c
	}
}

// readWant reads the --want file (see renew.ParseWant).
func readWant(file string) ([][]string, error) {
	want, err := renew.ReadWantFile(file)
	var werr *renew.WantFileError
	switch {
	case errors.As(err, &werr):
		return nil, usagef("--want %s %v", file, werr.Err)
	case err != nil:
		return nil, fmt.Errorf("--want: %w", err)
	}
	return want, nil
}
