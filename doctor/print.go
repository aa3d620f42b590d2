package doctor

import (
	"encoding/json"
	"fmt"
	"io"
)

// Write prints results as "certkeeper doctor" does: a two-space indented
// JSON list with asJSON, otherwise one line per check (status, check,
// detail), each followed by its fix when there is one.
func Write(w io.Writer, results []Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for _, r := range results {
		if _, err := fmt.Fprintf(w, "%-4s  %s: %s\n", r.Status, r.Check, r.Detail); err != nil {
			return err
		}
		if r.Fix != "" {
			if _, err := fmt.Fprintf(w, "      fix: %s\n", r.Fix); err != nil {
				return err
			}
		}
	}
	return nil
}

// Failures returns how many of results failed.
func Failures(results []Result) int {
	n := 0
	for _, r := range results {
		if r.Status == Fail {
			n++
		}
	}
	return n
}
