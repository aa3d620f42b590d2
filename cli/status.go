package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/status"
)

// certStatus is one line of "certkeeper status": the same fields in the
// table, in --json and in the status page's /status.json.
type certStatus = status.Cert

func statusCmd() *Command {
	var sf storageFlags
	var asJSON bool
	var certFiles cmdline.Strings
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
			var files []certStatus
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
				files = append(files, s)
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			out := bufio.NewWriterSize(env.Stdout, 64<<10)
			p := &statusPrinter{w: out, json: asJSON, spec: sf.spec}
			// Streamed: one record at a time, whatever the number stored.
			err = status.Walk(ctx, st, time.Now(), p.add)
			if err != nil {
				return fmt.Errorf("reading %s: %w", storageDir, err)
			}
			for _, s := range files {
				if err := p.add(s); err != nil {
					return err
				}
			}
			if err := p.finish(storageDir, emptyNote(sf.spec, storageDir)); err != nil {
				return err
			}
			if err := out.Flush(); err != nil {
				return err
			}
			return p.damagedError()
		},
	}
}

// statusPrinter prints "certkeeper status" as the entries come: JSON, or
// a table flushed every statusChunk rows (columns are aligned within a
// chunk), then the errors of the failing entries.
type statusPrinter struct {
	w       io.Writer
	json    bool
	spec    string // --storage, to name a damaged record's file
	arr     status.ArrayWriter
	tw      *tabwriter.Writer
	rows    int
	errs    []certStatus // entries with an error, printed after the table
	damaged []string     // keys (and files) of damaged records
}

// statusChunk is how many table rows are aligned and written together.
const statusChunk = 1000

func (p *statusPrinter) add(s certStatus) error {
	if s.State == status.Damaged {
		p.damaged = append(p.damaged, damagedWhere(s.Key, p.spec))
	}
	if p.json {
		p.arr.W = p.w
		return p.arr.Write(s)
	}
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(p.tw, "NAMES\tISSUER\tNOT AFTER\tNEXT RENEWAL\tLAST SEEN\tSTATE")
	}
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
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", statusLabel(s), s.Issuer, notAfter, next, seen, s.State)
	if s.LastError != "" {
		p.errs = append(p.errs, certStatus{Names: s.Names, Key: s.Key, State: s.State, LastError: s.LastError, RetryAt: s.RetryAt})
	}
	if p.rows++; p.rows%statusChunk == 0 {
		return p.tw.Flush()
	}
	return nil
}

// emptyNote is what "no certificates in DIR" adds: that the directory
// does not exist (a mistyped --storage, or the other user's default), or
// how certificates get there.
func emptyNote(spec, storageDir string) string {
	if !isURL(spec) {
		if _, err := os.Stat(storageDir); errors.Is(err, fs.ErrNotExist) {
			if spec == "" {
				return " (the directory does not exist: nothing was stored as this user; give --storage to read another)"
			}
			return " (the directory does not exist: is --storage right?)"
		}
	}
	return " (certificates appear here once proxy, server or cert issue obtains one with this storage)"
}

// finish ends the output: the JSON array, or the table and the errors;
// note follows "no certificates in DIR" when there are none.
func (p *statusPrinter) finish(storageDir, note string) error {
	if p.json {
		p.arr.W = p.w
		return p.arr.Close()
	}
	if p.tw == nil {
		fmt.Fprintf(p.w, "no certificates in %s%s\n", storageDir, note)
		return nil
	}
	if err := p.tw.Flush(); err != nil {
		return err
	}
	for _, s := range p.errs {
		fmt.Fprintf(p.w, "\n%s: %s", statusLabel(s), s.LastError)
		if !s.RetryAt.IsZero() {
			fmt.Fprintf(p.w, " (next attempt %s)", s.RetryAt.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(p.w)
	}
	return nil
}

// damagedError fails "certkeeper status" when a stored record cannot be
// read, naming each by its storage key and, in a directory storage, its
// file. The list has been printed first, in full.
func (p *statusPrinter) damagedError() error {
	if len(p.damaged) == 0 {
		return nil
	}
	return fmt.Errorf("%d damaged certificate record(s): %s; restore them from a backup or delete them "+
		"(a handshake or \"certkeeper cert issue\" obtains the name again)", len(p.damaged), strings.Join(p.damaged, ", "))
}

// damagedWhere names a damaged record: its key and, in a directory
// storage, its file.
func damagedWhere(key, spec string) string {
	if isURL(spec) || strings.HasPrefix(key, "file:") {
		return key
	}
	return key + " (file " + filepath.Join(storageWhere(spec), filepath.FromSlash(key)) + ")"
}

// statusLabel names a certificate in status's table: by its names, or by
// its storage key when its record could not be read.
func statusLabel(s certStatus) string {
	if len(s.Names) == 0 || s.State == status.Damaged {
		return s.Key
	}
	return strings.Join(s.Names, ",")
}
