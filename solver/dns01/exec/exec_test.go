package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/libdns/libdns"
)

// TestProgram: the program gets the action, FQDN and value as arguments
// and in the environment; a failure carries its output.
func TestProgram(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := filepath.Join(dir, "hook.sh")
	body := "#!/bin/sh\necho \"$1 $2 $3|$CERTKEEPER_ACTION $CERTKEEPER_FQDN $CERTKEEPER_VALUE $CERTKEEPER_ZONE\" >> " + log +
		"\n[ \"$3\" = bad ] && { echo no such zone >&2; exit 3; }\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &Provider{Program: script}
	rec := []libdns.Record{libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: "v1"}}
	if _, err := p.AppendRecords(t.Context(), "a.test.", rec); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeleteRecords(t.Context(), "a.test.", rec); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	want := "present _acme-challenge.a.test. v1|present _acme-challenge.a.test. v1 a.test.\n" +
		"cleanup _acme-challenge.a.test. v1|cleanup _acme-challenge.a.test. v1 a.test.\n"
	if string(got) != want {
		t.Errorf("program saw:\n%s\nwant:\n%s", got, want)
	}
	_, err := p.AppendRecords(t.Context(), "a.test.", []libdns.Record{libdns.TXT{Name: "x", Text: "bad"}})
	if err == nil || !strings.Contains(err.Error(), "no such zone") || !strings.Contains(err.Error(), "x.a.test.") {
		t.Errorf("failing program: err = %v, want its output and the record", err)
	}
}

// TestRawArgs: in RAW mode the program gets lego's arguments,
// "present -- DOMAIN TOKEN KEYAUTH", and the record in the environment.
func TestRawArgs(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := filepath.Join(dir, "hook.sh")
	body := "#!/bin/sh\necho \"$*|$CERTKEEPER_FQDN $CERTKEEPER_VALUE\" >> " + log + "\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	p := &Provider{Program: script, Mode: ModeRaw}
	c := dns01.ChallengeRecord{Zone: "a.test.", Record: libdns.TXT{Name: "_acme-challenge", Text: "digest"},
		Domain: "a.test", Token: "tok", KeyAuthorization: "tok.thumb"}
	if err := p.PresentChallenge(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := p.CleanUpChallenge(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(log)
	want := "present -- a.test tok tok.thumb|_acme-challenge.a.test. digest\ncleanup -- a.test tok tok.thumb|_acme-challenge.a.test. digest\n"
	if string(got) != want {
		t.Errorf("program saw:\n%s\nwant:\n%s", got, want)
	}
	p.Mode = "raw"
	if err := p.PresentChallenge(t.Context(), c); err == nil || !strings.Contains(err.Error(), `"RAW"`) {
		t.Errorf("mode %q: err = %v, want one naming the modes", p.Mode, err)
	}
}
