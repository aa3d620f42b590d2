package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// certStatus is one line of "certkeeper status": the same fields in the
// table and in --json.
type certStatus struct {
	Names       []string  `json:"names"`
	Issuer      string    `json:"issuer"`
	NotAfter    time.Time `json:"not_after"`
	NextRenewal time.Time `json:"next_renewal"`
	State       string    `json:"state"`
	OnDemand    bool      `json:"on_demand"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	Key         string    `json:"key"`
	LastError   string    `json:"last_error,omitempty"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
}

func statusCmd() *Command {
	var storageDir string
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
			fs.StringVar(&storageDir, "storage", "", "`DIR` of certkeeper's state (default as for cert issue)")
			fs.Var(&certFiles, "cert-file", "also report this `CERT:KEY` pair, as given to proxy or server --cert-file\n(issuer \"file\"; expiring with less than a third of its life or 14 days left); repeatable")
			fs.BoolVar(&asJSON, "json", false, "print JSON: a list of {names, issuer, not_after, next_renewal, state, on_demand,\nlast_seen, key, last_error, retry_at}")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("status takes no arguments")
			}
			if storageDir == "" {
				storageDir = defaultStorageDir()
			}
			list, err := readStatus(ctx, filestore.New(storageDir), time.Now())
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
				if list == nil {
					list = []certStatus{}
				}
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
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", strings.Join(s.Names, ","), s.Issuer,
					s.NotAfter.UTC().Format(time.RFC3339), next, seen, s.State)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, s := range list {
				if s.LastError != "" {
					fmt.Fprintf(env.Stdout, "\n%s: %s", strings.Join(s.Names, ","), s.LastError)
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

// readStatus reads every stored certificate. A damaged record is listed
// with state "damaged" rather than failing the whole listing.
func readStatus(ctx context.Context, st storage.Storage, now time.Time) ([]certStatus, error) {
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return nil, err
	}
	seen, errs, err := certkeeper.LoadStatusState(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("reading certkeeper's state: %w", err)
	}
	var out []certStatus
	for _, key := range keys {
		data, err := st.Load(ctx, key)
		if err != nil {
			continue // deleted since List
		}
		rec, err := storage.UnmarshalCertificate(data)
		if err != nil {
			out = append(out, certStatus{Key: key, State: "damaged", LastError: err.Error()})
			continue
		}
		leaf, err := rec.Leaf()
		if err != nil {
			out = append(out, certStatus{Key: key, Names: rec.Names, State: "damaged", LastError: err.Error()})
			continue
		}
		c := renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber}
		next := renewal.Due(c, now, nil)
		s := certStatus{Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter, NextRenewal: next,
			OnDemand: rec.OnDemand, Key: key, State: "fine"}
		if len(rec.Names) > 0 {
			s.LastSeen = seen[rec.Names[0]]
		}
		if e, ok := errs[key]; ok {
			s.LastError, s.RetryAt = e.Error, e.RetryAt
		}
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		switch {
		case !now.Before(leaf.NotAfter):
			s.State = "expired"
		case leaf.NotAfter.Sub(now) < life/10:
			s.State = "expiring"
		case s.LastError != "":
			s.State = "failing"
		case !next.After(now):
			s.State = "renewing"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
