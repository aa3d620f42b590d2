package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/open"
)

// certStatus is one line of "certkeeper status": the same fields in the
// table, in --json and in the status page's /status.json.
type certStatus = status.Cert

func statusCmd() *Command {
	var sf storageFlags
	var asJSON, check bool
	var certFiles cmdline.Strings
	return &Command{
		UsageLine:  "certkeeper status [NAME...] [flags]",
		OtherNames: []string{"certificates (certbot)", "list (lego)"},
		Short:      "show every stored certificate and its next renewal",
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
			fs.Var(&certFiles, "cert-file", "also report this `CERT:KEY` pair, as given to proxy or server --cert-file\n(issuer \"file\"; expiring with a third of its life or 14 days, at most half, left); repeatable")
			fs.BoolVar(&check, "nagios", false, "print a monitoring check's summary and problems (the Nagios plugin format, for any\ncheck runner or cron), and exit 0 OK, 1 WARNING, 2 CRITICAL or 3 UNKNOWN (see above)")
			fs.BoolVar(&asJSON, "json", false, "print JSON: a list of {names, issuer, not_after, next_renewal, state, on_demand,\nlast_seen, key, last_error, last_error_at, retry_at}; the status page's /status.json is the same")
		},
		TakesArgs: true,
		Run: func(ctx context.Context, env *Env, args []string) error {
			only, err := normalizeNames("NAME", args)
			if err != nil {
				return err
			}
			p := &status.Printer{JSON: asJSON, Check: check, Only: only}
			if err = showStatus(ctx, env, sf, certFiles, p); err == nil && !check && len(p.Missing()) > 0 && asJSON {
				return fmt.Errorf("no certificate for %s in %s", strings.Join(p.Missing(), ", "), sf.where()) // the JSON cannot say it
			} else if err == nil && !check && len(p.Missing()) > 0 {
				return exitStatus(1) // said by the table
			}
			if check && err != nil && !errors.As(err, new(*usageError)) {
				fmt.Fprint(env.Stdout, status.CheckUnknownLine(err))
				return exitStatus(status.CheckUnknown)
			} else if check && err == nil && p.CheckStatus() != status.CheckOK {
				return exitStatus(p.CheckStatus())
			}
			return err
		},
	}
}

// showStatus prints with p the status of what sf and certFiles name.
func showStatus(ctx context.Context, env *Env, sf storageFlags, certFiles []string, p *status.Printer) error {
	storageDir := sf.where()
	var files []certStatus
	for _, spec := range certFiles {
		s, err := certkeeper.StatusOfCertFile(spec, time.Now())
		if err != nil {
			return usagef("--cert-file: %v", err)
		}
		files = append(files, s)
	}
	if sf.Storage != "" && !open.IsURL(sf.Storage) { // a missing default directory is a user who stored nothing
		if err := status.CheckDir(storageDir); err != nil {
			return fmt.Errorf("--storage %s: %w: is --storage right?", storageDir, err)
		}
	}
	sf.existing = true
	st, closeStorage, err := sf.open(ctx, env)
	if err != nil {
		return err
	}
	defer closeStorage()
	out := bufio.NewWriterSize(env.Stdout, 64<<10)
	p.W = out
	noteDir := "" // the directory of a directory storage, for the empty-storage note
	if !open.IsURL(sf.Storage) {
		noteDir, p.Where = storageDir, status.DirWhere(storageDir)
	}
	// Streamed: one record at a time, whatever the number stored.
	err = status.WalkCovering(ctx, st, time.Now(), p.Only, p.Add)
	if err != nil {
		return fmt.Errorf("reading %s: %w", storageDir, err)
	}
	for _, s := range files {
		if err := p.Add(s); err != nil {
			return err
		}
	}
	if err := p.Finish(storageDir, status.EmptyNote(noteDir, sf.Storage == "")); err != nil {
		return err
	}
	if err := out.Flush(); err != nil {
		return err
	}
	if p.Check {
		return nil // a damaged record is CRITICAL
	}
	return p.DamagedError()
}
