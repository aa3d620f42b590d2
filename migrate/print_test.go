package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteActions: the table "certkeeper import" prints, and the count
// of skipped entries that decides its exit status.
func TestWriteActions(t *testing.T) {
	actions := []Action{
		{Kind: "certificate", Subject: "a.test", Source: "live/a.test", Result: Imported},
		{Kind: "entry", Source: "live/b.test", Result: Skipped, Why: "key does not match"},
	}
	var b strings.Builder
	if err := WriteActions(&b, actions); err != nil {
		t.Fatal(err)
	}
	want := "RESULT    KIND         SUBJECT  SOURCE       WHY\n" +
		"imported  certificate  a.test   live/a.test  \n" +
		"skipped   entry        -        live/b.test  key does not match\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	if n := CountSkipped(actions); n != 1 {
		t.Errorf("CountSkipped = %d, want 1", n)
	}
}

// TestWriteActionsEscapes: the names and hook commands of the directory
// imported reach the table with their control characters escaped: a hook
// file named with escape sequences cleared a security trial's terminal.
func TestWriteActionsEscapes(t *testing.T) {
	var b strings.Builder
	err := WriteActions(&b, []Action{{Kind: "setting", Source: "renewal-hooks/deploy/x\n\x1b[2J\x1b]0;TITLE\a", Result: NotCarried,
		Why: "pre_hook = a\x1b[1A"}})
	if err != nil {
		t.Fatal(err)
	}
	got := b.String()
	if strings.ContainsAny(got, "\x1b\a") || strings.Count(got, "\n") != 2 || !strings.Contains(got, `x\n\x1b[2J\x1b]0;TITLE\a`) {
		t.Errorf("table %q, want the control characters escaped", got)
	}
}

// TestOutcome: nothing found and skipped entries fail an import; kept
// and unchanged ones do not.
func TestOutcome(t *testing.T) {
	if err := Outcome("certbot", "/etc/letsencrypt", nil); err == nil || err.Error() != "found no certificates or accounts of certbot in /etc/letsencrypt" {
		t.Errorf("no actions: %v", err)
	}
	if err := Outcome("certbot", "/d", []Action{{Result: Kept}, {Result: Unchanged}}); err != nil {
		t.Errorf("kept and unchanged: %v", err)
	}
	if err := Outcome("certbot", "/d", []Action{{Result: Imported}, {Result: Skipped}}); err == nil || err.Error() != "1 of 2 entries could not be imported (see above)" {
		t.Errorf("one skipped: %v", err)
	}
}

// TestOutcomeCertbotFolder: given a folder of certbot's configuration
// directory (live/, a lineage in it, archive/, renewal/), the import that
// finds nothing says to give the directory above it; settings alone are
// nothing found.
func TestOutcomeCertbotFolder(t *testing.T) {
	for dir, parent := range map[string]string{
		"/etc/letsencrypt/live": "/etc/letsencrypt", "/etc/letsencrypt/live/": "/etc/letsencrypt",
		"le/archive/a.test": "le", "le/renewal": "le", "/etc/letsencrypt": "", "/srv/a.test": "",
	} {
		err := Outcome(Certbot, dir, []Action{{Result: NotCarried}})
		hint := "give that directory, which holds renewal/ and accounts/: certkeeper import --from certbot " + parent
		if err == nil || parent != "" && !strings.HasSuffix(err.Error(), hint) || parent == "" && strings.Contains(err.Error(), "give") {
			t.Errorf("Outcome(certbot, %q) = %v, want the hint to give %q", dir, err, parent)
		}
	}
	if err := Outcome(Lego, "/x/live", nil); err == nil || strings.Contains(err.Error(), "certbot") {
		t.Errorf("Outcome(lego, /x/live) = %v", err)
	}
}

// TestOutcomeOtherTool: given another tool's directory (lego's to
// --from certbot, certbot's to --from lego: trial 29), the import that
// finds nothing, or only entries it cannot import, names the tool whose
// layout the directory has; given the right tool, it names none.
func TestOutcomeOtherTool(t *testing.T) {
	for _, m := range toolMarks {
		dir := t.TempDir()
		for _, p := range []string{m.a, m.b} {
			if err := os.Mkdir(filepath.Join(dir, p), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		want := "; " + dir + " looks like " + m.tool + "'s directory (" + m.a + "/, " + m.b + "/): certkeeper import --from " + m.tool + " " + dir
		for _, tool := range Tools() {
			for _, acts := range [][]Action{nil, {{Result: Skipped}}} {
				err := Outcome(tool, dir, acts)
				if got := err != nil && strings.HasSuffix(err.Error(), want); got != (tool != m.tool) {
					t.Errorf("Outcome(%s, %s's directory, %d skipped) = %v; want the hint %v", tool, m.tool, len(acts), err, tool != m.tool)
				}
			}
		}
		if err := Outcome(Certbot, dir, []Action{{Result: Imported}, {Result: Skipped}}); strings.Contains(err.Error(), "looks like") {
			t.Errorf("one of two skipped: %v, want no hint (the tool is right)", err)
		}
		// A folder inside it (lego's certificates/, dehydrated's certs/):
		// the directory above is named (certbot's by parentHint).
		sub := filepath.Join(dir, m.b)
		want = "; " + sub + " is inside " + m.tool + "'s directory " + dir + " (" + m.a + "/, " + m.b + "/): certkeeper import --from " + m.tool + " " + dir
		if err := Outcome(m.tool, sub, nil); m.tool != Certbot && (err == nil || !strings.HasSuffix(err.Error(), want)) {
			t.Errorf("Outcome(%s, %s) = %v, want the hint %q", m.tool, sub, err, want)
		}
	}
}

// TestCheckTool: a tool Read does not know is ErrUnknownTool, naming
// those it knows; none given asks for --from.
func TestCheckTool(t *testing.T) {
	if err := CheckTool("certbott"); !errors.Is(err, ErrUnknownTool) || !strings.Contains(err.Error(), `"certbott": use one of certbot, lego`) {
		t.Errorf("CheckTool(certbott) = %v", err)
	}
	if err := CheckTool(""); err == nil || !strings.Contains(err.Error(), "--from is required") {
		t.Errorf("CheckTool(\"\") = %v", err)
	}
	for _, tool := range Tools() {
		if err := CheckTool(tool); err != nil {
			t.Errorf("CheckTool(%s) = %v", tool, err)
		}
	}
}
