package migrate

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteActions prints actions as "certkeeper import" does: a table with
// one line per entry (result, kind, subject, source, and why for what was
// skipped) and per setting not carried over, or nothing when there are
// none.
func WriteActions(w io.Writer, actions []Action) error {
	if len(actions) == 0 {
		return nil // no table: Outcome says nothing was found
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tKIND\tSUBJECT\tSOURCE\tWHY")
	for _, a := range actions {
		subject := a.Subject
		if subject == "" {
			subject = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Result, a.Kind, subject, a.Source, a.Why)
	}
	return tw.Flush()
}

// CountSkipped returns how many of actions were Skipped: entries that
// could not be imported.
func CountSkipped(actions []Action) int {
	n := 0
	for _, a := range actions {
		if a.Result == Skipped {
			n++
		}
	}
	return n
}

// Outcome is the error "certkeeper import" ends with after printing
// actions, read from tool's state in dir: none when everything was
// imported (or unchanged, kept or superseded), else that nothing was found
// or how many entries were skipped. Settings not carried over are notes, not entries.
func Outcome(tool, dir string, actions []Action) error {
	entries := 0
	for _, a := range actions {
		if a.Result != NotCarried {
			entries++
		}
	}
	if entries == 0 {
		return fmt.Errorf("found no certificates or accounts of %s in %s", tool, dir)
	}
	if skipped := CountSkipped(actions); skipped > 0 {
		return fmt.Errorf("%d of %d entries could not be imported (see above)", skipped, entries)
	}
	return nil
}
