package migrate

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteActions prints actions as "certkeeper import" does: a table with
// one line per entry (result, kind, subject, source, and why for what was
// skipped).
func WriteActions(w io.Writer, actions []Action) error {
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
