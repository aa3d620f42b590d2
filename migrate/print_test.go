package migrate

import (
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
