package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage"
)

// certStatus is one line of "certkeeper status": the same fields in the
// table, in --json and in the status page's /status.json.
type certStatus = statuspage.Cert

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
are shown), expiring (less than a tenth of its lifetime left) or expired; and when a handshake
last asked for it (written by a running certkeeper every few minutes).

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
					s.State, s.LastError = "damaged", err.Error()
				}
				list = append(list, s)
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", statusLabel(s), s.Issuer,
					s.NotAfter.UTC().Format(time.RFC3339), next, seen, s.State)
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
			return nil
		},
	}
}

// statusLabel names a certificate in status's table: by its names, or by
// its storage key when its record could not be read.
func statusLabel(s certStatus) string {
	if len(s.Names) == 0 {
		return s.Key
	}
	return strings.Join(s.Names, ",")
}

// readStatus reads every stored certificate, as the status page does.
func readStatus(ctx context.Context, st storage.Storage, now time.Time) ([]certStatus, error) {
	return statuspage.Read(ctx, st, now)
}
