package migrate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Result, a.Kind, printable(subject), printable(a.Source), printable(a.Why))
	}
	return tw.Flush()
}

// printable escapes the control characters of s (\x1b, \n, ...): names
// and hook commands come from the directory imported, which its owner
// chose, and a file named with escape sequences cleared the operator's
// terminal or hid lines of the report (a security trial).
func printable(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
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
// (and, for a subdirectory of certbot's, to give its parent) or how many
// entries were skipped. Settings not carried over are notes, not entries.
func Outcome(tool, dir string, actions []Action) error {
	entries := 0
	for _, a := range actions {
		if a.Result != NotCarried {
			entries++
		}
	}
	if entries == 0 {
		return fmt.Errorf("found no certificates or accounts of %s in %s%s%s", tool, dir, parentHint(tool, dir), otherToolHint(tool, dir))
	}
	if skipped := CountSkipped(actions); skipped > 0 {
		hint := ""
		if skipped == entries {
			hint = otherToolHint(tool, dir)
		}
		return fmt.Errorf("%d of %d entries could not be imported (see above)%s", skipped, entries, hint)
	}
	return nil
}

// CertbotConfigDir returns certbot's configuration directory (the one
// holding live/ and renewal/) when dir is it, one of its folders (live/,
// archive/, renewal/, accounts/, renewal-hooks/) or one of their lineages
// (live/NAME/), where a certbot user's servers read their certificates.
func CertbotConfigDir(dir string) (string, bool) {
	dir = filepath.Clean(dir)
	for _, d := range []string{dir, filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		_, errR := os.Stat(filepath.Join(d, "renewal"))
		_, errL := os.Stat(filepath.Join(d, "live"))
		if errR == nil && errL == nil && (d == dir || strings.HasPrefix(dir, d+string(filepath.Separator)) && parentHint(Certbot, dir) != "") {
			return d, true
		}
	}
	return "", false
}

// toolMarks are what each tool's directory holds, besides what another
// tool's may: both folders (or files) of a pair must be there.
var toolMarks = []struct{ tool, a, b string }{
	{Certbot, "renewal", "live"}, {Caddy, "acme", "certificates"}, {Lego, "accounts", "certificates"},
	{Dehydrated, "accounts", "certs"}, {ACMESH, "account.conf", "ca"},
}

// otherToolHint says, when dir is laid out as another tool's directory
// than tool's (certbot's given as lego's, say), or is a folder inside a
// tool's directory (lego's certificates/), which tool and directory to
// name: the import found nothing of tool in dir, or nothing it could
// import. certbot's own folders are parentHint's.
func otherToolHint(tool, dir string) string {
	d := filepath.Clean(dir)
	for up := 0; up < 3; up, d = up+1, filepath.Dir(d) {
		for _, m := range toolMarks {
			_, errA := os.Stat(filepath.Join(d, m.a))
			_, errB := os.Stat(filepath.Join(d, m.b))
			switch {
			case errA != nil || errB != nil:
				continue
			case up == 0 && m.tool == tool, up > 0 && m.tool == Certbot && tool == Certbot:
				return ""
			case up == 0:
				return fmt.Sprintf("; %s looks like %s's directory (%s/, %s/): certkeeper import --from %s %s", dir, m.tool, m.a, m.b, m.tool, dir)
			}
			return fmt.Sprintf("; %s is inside %s's directory %s (%s/, %s/): certkeeper import --from %s %s", dir, m.tool, d, m.a, m.b, m.tool, d)
		}
	}
	return ""
}

// certbotFolders are the folders of certbot's configuration directory
// that a user may give import instead of the directory itself.
var certbotFolders = []string{"live", "archive", "renewal", "accounts", "renewal-hooks"}

// parentHint says, when dir is certbot's live/, archive/ (or one of their
// lineages), renewal/, accounts/ or renewal-hooks/, to give the
// configuration directory above it.
func parentHint(tool, dir string) string {
	if tool != Certbot {
		return ""
	}
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	switch {
	case slices.Contains(certbotFolders, filepath.Base(dir)):
	case filepath.Base(parent) == "live" || filepath.Base(parent) == "archive":
		dir, parent = parent, filepath.Dir(parent)
	default:
		return ""
	}
	return fmt.Sprintf(": %s is the %s/ folder of certbot's configuration directory; give that directory, which holds renewal/ and accounts/: certkeeper import --from certbot %s",
		dir, filepath.Base(dir), parent)
}
