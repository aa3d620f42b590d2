package archive

import (
	"errors"
	"fmt"
	"strings"
)

// Explain returns the error "certkeeper storage import" and "migrate"
// end with on a conflict: how many keys of where (the storage written
// to) differ from those of from ("the archive", "--from"), the first ten
// of them one per line, and how to go on.
func (e *ConflictError) Explain(where, from string) error {
	const show = 10
	var b strings.Builder
	fmt.Fprintf(&b, "%d keys in %s already hold values that differ from %s's (and are not certificates renewed since, which are kept); nothing was written:\n", len(e.Keys), where, from)
	for _, k := range e.Keys[:min(len(e.Keys), show)] {
		fmt.Fprintf(&b, "\t%s\n", k)
	}
	if len(e.Keys) > show {
		fmt.Fprintf(&b, "\t(and %d more)\n", len(e.Keys)-show)
	}
	fmt.Fprintf(&b, "Run again with --overwrite to replace them with %s's values.", from)
	return errors.New(b.String())
}

// ByteSize formats an archive's size for people: 512 B, 14.2 KiB,
// 3.0 MiB.
func ByteSize(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
