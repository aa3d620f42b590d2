package status

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"
)

// Printer writes Certs as "certkeeper status" prints them, as they come:
// a JSON array (the form of /status.json), or a table flushed every
// chunk rows (columns are aligned within a chunk) followed by the errors
// of the failing entries. A Go program walking a storage with Walk can
// pass Add as the callback and get the command's output, whatever the
// number of certificates stored.
type Printer struct {
	// W receives the output; buffer it when writing many entries.
	W io.Writer
	// JSON selects the JSON array instead of the table.
	JSON bool
	// Where names a damaged record for DamagedError, say with its file;
	// nil names it by its storage key.
	Where func(key string) string
	// Now is the time retry notes are told against; zero means the clock.
	Now time.Time
	// Check makes the output a monitoring check's (Nagios plugin
	// conventions): instead of the table, a summary line and the
	// problems (see Severity); CheckStatus gives the exit status. With
	// JSON, the array is printed and CheckStatus still applies.
	Check bool
	// Only, if set, limits the entries to the certificates for these
	// names (normalised): one of a certificate's names, or a wildcard
	// that covers it. Damaged records are listed all the same: one may
	// hold a certificate for a name. A name no certificate covers (none,
	// or only a failing first issuance) is reported by Finish (in a
	// check, as CRITICAL) and by Missing.
	Only []string

	found   map[string]bool // the names of Only an entry covered
	check   checker
	arr     ArrayWriter
	tw      *tabwriter.Writer
	rows    int
	errs    []Cert   // entries with an error, printed after the table
	damaged []string // names of damaged records
	denied  []string // names of records this user may not read
}

// printChunk is how many table rows are aligned and written together.
const printChunk = 1000

// Add prints one entry (a row of the table, or an element of the array).
func (p *Printer) Add(s Cert) error {
	if len(p.Only) > 0 && !p.covers(s) && s.State != Damaged {
		return nil
	}
	if s.State == Damaged {
		where := s.Key
		if p.Where != nil {
			where = p.Where(s.Key)
		}
		if strings.Contains(s.LastError, fs.ErrPermission.Error()) {
			p.denied = append(p.denied, where)
		} else {
			p.damaged = append(p.damaged, where)
		}
	}
	if p.Check {
		p.check.add(s)
	}
	if p.JSON {
		p.arr.W = p.W
		return p.arr.Write(s)
	}
	if p.Check {
		return nil
	}
	if p.tw == nil {
		p.tw = tabwriter.NewWriter(p.W, 0, 8, 2, ' ', 0)
		fmt.Fprintln(p.tw, "NAMES\tISSUER\tNOT AFTER\tNEXT RENEWAL\tLAST SEEN\tSTATE")
	}
	// "-": never seen; a certificate file (renewed by its owner); no
	// certificate (damaged, or its first issuance is failing).
	fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", Label(s), s.Issuer, timeOrDash(s.NotAfter), timeOrDash(s.NextRenewal), timeOrDash(s.LastSeen), s.State)
	if s.LastError != "" {
		p.errs = append(p.errs, Cert{Names: s.Names, Key: s.Key, State: s.State, LastError: s.LastError, RetryAt: s.RetryAt,
			NextRenewal: s.NextRenewal, FirstIssue: s.FirstIssue})
	}
	if p.rows++; p.rows%printChunk == 0 {
		return p.tw.Flush()
	}
	return nil
}

// covers reports whether s is an entry for one of the names of Only,
// and notes which have a certificate (a failing first issuance has none).
func (p *Printer) covers(s Cert) bool {
	var covered bool
	for _, name := range p.Only {
		if s.Covers(name) {
			if p.found == nil {
				p.found = make(map[string]bool)
			}
			p.found[name] = p.found[name] || !s.FirstIssue
			covered = true
		}
	}
	return covered
}

// Missing returns the names of Only that no entry added covers.
func (p *Printer) Missing() []string {
	var out []string
	for _, name := range p.Only {
		if !p.found[name] {
			out = append(out, name)
		}
	}
	return out
}

// timeOrDash formats t in UTC as RFC 3339, or "-" when it is zero.
func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// Finish ends the output: the JSON array, or the table and the errors.
// With no entries, the table is the line "no certificates in WHERE" and
// note (say, why the storage is empty).
func (p *Printer) Finish(where, note string) error {
	if p.JSON {
		p.arr.W = p.W
		return p.arr.Close()
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	if p.Check {
		p.check.missing, p.check.asked = p.Missing(), len(p.Only)
		return p.check.write(p.W, now)
	}
	if p.tw == nil && len(p.Only) > 0 {
		fmt.Fprintf(p.W, "no certificate for %s in %s\n", strings.Join(p.Only, ", "), where)
		return nil
	}
	if p.tw == nil {
		fmt.Fprintf(p.W, "no certificates in %s%s\n", where, note)
		return nil
	}
	if err := p.tw.Flush(); err != nil {
		return err
	}
	for _, s := range p.errs {
		fmt.Fprintf(p.W, "\n%s: %s", Label(s), s.LastError)
		if note := s.RetryNote(now, timeOrDash); note != "" {
			fmt.Fprintf(p.W, " (%s)", note)
		}
		fmt.Fprintln(p.W)
	}
	if missing := p.Missing(); len(missing) > 0 {
		fmt.Fprintf(p.W, "\nno certificate for %s in %s\n", strings.Join(missing, ", "), where)
	}
	return nil
}

// RetryNote says when a failed attempt is tried again, with times
// formatted by format: "next attempt T" ("next attempt due since T" once
// T has passed: a running certkeeper is at it, or will be at its next
// start), or for a first issuance that waits for a handshake, "tried
// again when a handshake asks for it" (from T, when T is still to come).
// It is "" when nothing failed.
func (s Cert) RetryNote(now time.Time, format func(time.Time) string) string {
	switch {
	case s.FirstIssue && s.NextRenewal.IsZero() && s.RetryAt.After(now):
		return "tried again when a handshake asks for it, from " + format(s.RetryAt) + forget(s)
	case s.FirstIssue && s.NextRenewal.IsZero():
		return "tried again when a handshake asks for it" + forget(s)
	case !s.RetryAt.IsZero() && s.RetryAt.Before(now): // in progress, or due at the next start
		return "next attempt due since " + format(s.RetryAt)
	case !s.RetryAt.IsZero():
		return "next attempt " + format(s.RetryAt)
	}
	return ""
}

// forget says how to drop a failing first issuance that nobody asks for
// again, which otherwise keeps a check at WARNING for its 7 days (an ops
// trial: a scanner's name after a CA outage).
func forget(s Cert) string {
	if len(s.Names) == 0 {
		return ""
	}
	return "; certkeeper storage delete " + s.Names[0] + " forgets it"
}

// CheckStatus is the exit status of a check of the entries added:
// CheckOK, CheckWarning or CheckCritical, the worst Severity of any.
func (p *Printer) CheckStatus() int { return p.check.worst }

// DamagedError returns, when a record added was damaged, the error that
// names each (by Where) and says how to recover; nil otherwise.
//
// A record this user may not read (permission denied: left by a run as
// another user) is not damaged: the error says to read it as the user
// certkeeper runs as, or to give it back to that user, not to delete it.
func (p *Printer) DamagedError() error {
	var errs []error
	if len(p.damaged) > 0 {
		errs = append(errs, fmt.Errorf("%d damaged certificate record(s): %s; restore them from a backup or delete them "+
			"(a handshake or \"certkeeper cert issue\" obtains the name again)", len(p.damaged), strings.Join(p.damaged, ", ")))
	}
	if len(p.denied) > 0 {
		errs = append(errs, fmt.Errorf("%d certificate record(s) this user may not read: %s; run as the user certkeeper runs as, "+
			"or give the files back to that user (chown); a certkeeper that cannot read them cannot serve them either",
			len(p.denied), strings.Join(p.denied, ", ")))
	}
	return errors.Join(errs...)
}

// Label names a certificate in the status table: by its names, or by its
// storage key when its record could not be read.
func Label(s Cert) string {
	if len(s.Names) == 0 || s.State == Damaged {
		return s.Key
	}
	return strings.Join(s.Names, ",")
}
