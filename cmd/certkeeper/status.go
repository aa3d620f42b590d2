package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// certStatus is one line of "certkeeper status": the same fields in the
// table, in --json and in the status page's /status.json.
type certStatus = status.Cert

func statusCmd() *Command {
	var sf storageFlags
	var asJSON bool
	var certFiles stringsFlag
	return &Command{
		UsageLine: "certkeeper status [flags]",
		Short:     "show every stored certificate and its next renewal",
		Long: `Status lists every certificate in --storage: its names, issuer, expiry, when it is due for
renewal (by the lifetime rule; a running certkeeper refines it with the CA's ARI window) and a
state: fine, renewing (due now), failing (the last renewal failed; the error and the next attempt
are shown), expiring (less than a tenth of its lifetime left), expired or damaged (the stored
record cannot be read; it is named by its storage key and file); and when a handshake last asked
for it (written by a running certkeeper every few minutes). A name whose first certificate cannot
be obtained is listed too, as failing, with the CA's error and the next attempt.

Status exits non-zero when a stored record is damaged, after listing everything.

	certkeeper status
	certkeeper status --json | jq '.[] | select(.state != "fine")'`,
		Flags: func(fs *flag.FlagSet) {
			sf.register(fs)
			fs.Var(&certFiles, "cert-file", "also report this `CERT:KEY` pair, as given to proxy or server --cert-file\n(issuer \"file\"; expiring with less than a third of its life or 14 days left); repeatable")
			fs.BoolVar(&asJSON, "json", false, "print JSON: a list of {names, issuer, not_after, next_renewal, state, on_demand,\nlast_seen, key, last_error, last_error_at, retry_at}; the status page's /status.json is the same")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("status takes no arguments")
			}
			storageDir := sf.where()
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			list, err := readStatus(ctx, st, time.Now())
			if err != nil {
				return fmt.Errorf("reading %s: %w", storageDir, err)
			}
			for _, spec := range certFiles {
				cf, err := certkeeper.ParseCertFile(spec)
				if err != nil {
					return usagef("--cert-file: %v", err)
				}
				fst, err := certkeeper.ReadCertFile(cf, time.Now())
				s := certStatus{Names: fst.Names, Issuer: "file", NotAfter: fst.NotAfter, State: fst.State, Key: "file:" + cf.Cert}
				if err != nil {
					s.State, s.LastError = status.Damaged, err.Error()
				}
				list = append(list, s)
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(list); err != nil {
					return err
				}
				return damagedError(list, sf.spec)
			}
			if len(list) == 0 {
				fmt.Fprintf(env.Stdout, "no certificates in %s\n", storageDir)
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "NAMES\tISSUER\tNOT AFTER\tNEXT RENEWAL\tLAST SEEN\tSTATE")
			for _, s := range list {
				seen := "-"
				if !s.LastSeen.IsZero() {
					seen = s.LastSeen.UTC().Format(time.RFC3339)
				}
				next := "-" // certificate files are renewed by their owner
				if !s.NextRenewal.IsZero() {
					next = s.NextRenewal.UTC().Format(time.RFC3339)
				}
				notAfter := "-" // no certificate: damaged, or its first issuance is failing
				if !s.NotAfter.IsZero() {
					notAfter = s.NotAfter.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", statusLabel(s), s.Issuer, notAfter, next, seen, s.State)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, s := range list {
				if s.LastError != "" {
					fmt.Fprintf(env.Stdout, "\n%s: %s", statusLabel(s), s.LastError)
					if !s.RetryAt.IsZero() {
						fmt.Fprintf(env.Stdout, " (next attempt %s)", s.RetryAt.UTC().Format(time.RFC3339))
					}
					fmt.Fprintln(env.Stdout)
				}
			}
			return damagedError(list, sf.spec)
		},
	}
}

// damagedError fails "certkeeper status" when a stored record cannot be
// read, naming each by its storage key and, in a directory storage, its
// file. The list has been printed first, in full.
func damagedError(list []certStatus, spec string) error {
	var where []string
	for _, s := range list {
		if s.State != status.Damaged {
			continue
		}
		w := s.Key
		if !isURL(spec) && !strings.HasPrefix(s.Key, "file:") {
			w += " (file " + filepath.Join(storageWhere(spec), filepath.FromSlash(s.Key)) + ")"
		}
		where = append(where, w)
	}
	if len(where) == 0 {
		return nil
	}
	return fmt.Errorf("%d damaged certificate record(s): %s; restore them from a backup or delete them "+
		"(a handshake or \"certkeeper cert issue\" obtains the name again)", len(where), strings.Join(where, ", "))
}

// statusLabel names a certificate in status's table: by its names, or by
// its storage key when its record could not be read.
func statusLabel(s certStatus) string {
	if len(s.Names) == 0 || s.State == status.Damaged {
		return s.Key
	}
	return strings.Join(s.Names, ",")
}

// readStatus reads every stored certificate, as the status page does.
func readStatus(ctx context.Context, st storage.Storage, now time.Time) ([]certStatus, error) {
	return status.Read(ctx, st, now)
}

// allowedBy is the status page's check of stored names against m's
// Policy, or nil when m has none (a server, which issues what its
// clients ask for).
func allowedBy(m *certkeeper.Manager) func(ctx context.Context, name string) error {
	if m == nil || m.Policy == nil {
		return nil
	}
	return m.Policy.Decide
}
