package status_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/status"
)

// TestPrinter: the table, the errors after it, the empty note, the JSON
// array and the damaged-record error, as "certkeeper status" prints them.
func TestPrinter(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	entries := []status.Cert{
		{Names: []string{"a.test", "b.test"}, Issuer: "acme", NotAfter: at, NextRenewal: at, State: status.Fine},
		{Names: []string{"c.test"}, Issuer: "acme", State: status.Failing, LastError: "rate limited", RetryAt: at},
		{Names: []string{"d.test"}, Key: "certificates/x/d.test.json", State: status.Damaged, LastError: "bad json"},
		// Its next attempt has come: in progress (a CA that hangs), or
		// due at the next start; not "next attempt" in the past.
		{Names: []string{"e.test"}, Issuer: "acme", State: status.Failing, LastError: "timeout", RetryAt: at.Add(-2 * time.Hour)},
	}
	var b strings.Builder
	p := &status.Printer{W: &b, Now: at.Add(-time.Hour), Where: func(key string) string { return key + " (file /s/" + key + ")" }}
	for _, s := range entries {
		if err := p.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Finish("/s", " (note)"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"NAMES                       ISSUER  NOT AFTER             NEXT RENEWAL          LAST SEEN  STATE\n",
		"a.test,b.test               acme    2026-01-02T03:04:05Z  2026-01-02T03:04:05Z  -          fine\n",
		"\nc.test: rate limited (next attempt 2026-01-02T03:04:05Z)\n",
		"\ncertificates/x/d.test.json: bad json\n",
		"\ne.test: timeout (next attempt due since 2026-01-02T01:04:05Z)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	err := p.DamagedError()
	if err == nil || !strings.Contains(err.Error(), "1 damaged certificate record(s): certificates/x/d.test.json (file /s/certificates/x/d.test.json);") {
		t.Errorf("DamagedError = %v", err)
	}

	b.Reset()
	p = &status.Printer{W: &b}
	if err := p.Finish("/s", " (note)"); err != nil || b.String() != "no certificates in /s (note)\n" || p.DamagedError() != nil {
		t.Errorf("empty table = %q, %v", b.String(), err)
	}
	b.Reset()
	p = &status.Printer{W: &b, JSON: true}
	if err := p.Add(entries[0]); err != nil {
		t.Fatal(err)
	}
	if err := p.Finish("/s", ""); err != nil || !strings.HasPrefix(b.String(), "[\n  {") || !strings.HasSuffix(b.String(), "}\n]\n") {
		t.Errorf("JSON = %q, %v", b.String(), err)
	}
}

// TestDamagedErrorUnreadable: a record this user may not read is not
// called damaged, nor to be deleted: the error says whose it should be
// (trial 28: a run as root left records the service user could not read).
func TestDamagedErrorUnreadable(t *testing.T) {
	p := &status.Printer{W: io.Discard}
	for _, c := range []status.Cert{
		{Key: "certificates/x/a.test.json", State: status.Damaged, LastError: "open /s/a.test.json: permission denied"},
		{Key: "certificates/x/b.test.json", State: status.Damaged, LastError: "bad json"},
	} {
		if err := p.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	err := p.DamagedError()
	if err == nil {
		t.Fatal("DamagedError = nil")
	}
	for _, want := range []string{
		"1 damaged certificate record(s): certificates/x/b.test.json; restore",
		"1 certificate record(s) this user may not read: certificates/x/a.test.json; run as the user certkeeper runs as",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("DamagedError = %v\nwant %q", err, want)
		}
	}
}

// TestPrinterOnly: with names given, the table lists their certificates,
// a failing first issuance of one (which leaves it without a
// certificate: missing) and every damaged record (one may be a name's),
// not other certificates; the names without a certificate end it.
func TestPrinterOnly(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b strings.Builder
	p := &status.Printer{W: &b, Now: at, Only: []string{"a.test", "x1.test", "nope.test"}}
	for _, s := range []status.Cert{
		{Names: []string{"a.test"}, Issuer: "acme", NotAfter: at, State: status.Fine},
		{Names: []string{"b.test"}, Issuer: "acme", NotAfter: at, State: status.Fine},
		{Names: []string{"x1.test"}, Key: "failing/x1.test", State: status.Failing, FirstIssue: true, LastError: "refused"},
		{Key: "certificates/local/c.test.json", State: status.Damaged, LastError: "bad json"},
	} {
		if err := p.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Finish("/s", ""); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"\na.test ", "\nx1.test ", "certificates/local/c.test.json", "\nno certificate for x1.test, nope.test in /s\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "b.test") {
		t.Errorf("output lists b.test, not asked for:\n%s", out)
	}
	if got := p.Missing(); strings.Join(got, " ") != "x1.test nope.test" {
		t.Errorf("Missing = %v, want x1.test (a failing first issuance) and nope.test", got)
	}
	if p.DamagedError() == nil {
		t.Error("a damaged record among names asked for: no DamagedError")
	}
}

// TestCheckNamesAskedFor: a check of names counts the names asked for,
// not the entries listed for them (a trial: one name asked for, "of 4
// certificate(s) asked for", its failing first issuance and a damaged
// record counted beside the name).
func TestCheckNamesAskedFor(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b strings.Builder
	p := &status.Printer{W: &b, Now: at, Check: true, Only: []string{"a.test", "gone.test"}}
	for _, s := range []status.Cert{
		{Names: []string{"a.test"}, Issuer: "acme", NotAfter: at.Add(30 * 24 * time.Hour), State: status.Fine},
		{Key: "certificates/x/broken.json", State: status.Damaged, LastError: "bad json"},
		{Names: []string{"gone.test"}, Key: status.FailingKey("gone.test", ""), State: status.Failing, LastError: "refused", FirstIssue: true},
	} {
		if err := p.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Finish("/s", ""); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(b.String(), "\n"); first != "CERTKEEPER CRITICAL - 1 missing, 1 damaged, 1 failing, 1 fine for 2 name(s) asked for | expired=0 damaged=1 revoked=0 expiring=0 failing=1 renewing=0 fine=1 missing=1" {
		t.Errorf("summary %q", first)
	}
}
