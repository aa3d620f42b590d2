package cmdline

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// testFlags is a flag set with a value flag, a boolean, a one-letter
// repeatable flag and a deprecated alias.
func testFlags() (*flag.FlagSet, *string, *bool, *Strings, *Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	storage := fs.String("storage", "", "`DIR`")
	dry := fs.Bool("dry-run", false, "do nothing")
	var names Strings
	fs.Var(&names, "d", "`NAME`; repeatable")
	var valid Duration
	fs.Var(&valid, "valid-for", "`DURATION`")
	Deprecated(fs, "days", "valid-for", func(v string) string { return v + "d" })
	return fs, storage, dry, &names, &valid
}

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name      string
		args      []string
		stopAtArg bool
		want      []string
		storage   string
		dry       bool
		names     []string
	}{
		{"flags after arguments", []string{"DIR", "--storage", "S", "-d", "a"}, false, []string{"DIR"}, "S", false, []string{"a"}},
		{"bool takes no word", []string{"--dry-run", "DIR"}, false, []string{"DIR"}, "", true, nil},
		{"bool=false", []string{"--dry-run=false", "DIR"}, false, []string{"DIR"}, "", false, nil},
		{"value that looks like a flag", []string{"--storage", "-p"}, false, nil, "-p", false, nil},
		{"value that looks like an unknown flag", []string{"--storage", "--x"}, false, nil, "--x", false, nil},
		{"flag given as value with =", []string{"--storage=--dry-run"}, false, nil, "--dry-run", false, nil},
		{"dash dash", []string{"-d", "a", "--", "--storage", "-"}, false, []string{"--storage", "-"}, "", false, []string{"a"}},
		{"stdin is an argument", []string{"-", "-d=b"}, false, []string{"-"}, "", false, []string{"b"}},
		{"stop at argument", []string{"-d", "a", "proxy", "--storage", "S"}, true, []string{"proxy", "--storage", "S"}, "", false, []string{"a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs, storage, dry, names, _ := testFlags()
			got, err := Parse(fs, tt.args, tt.stopAtArg, nil)
			if err != nil || !slices.Equal(got, tt.want) || *storage != tt.storage || *dry != tt.dry || !slices.Equal(*names, tt.names) {
				t.Errorf("Parse(%q) = %q, %v; storage %q, dry-run %v, d %q; want %q, storage %q, dry-run %v, d %q",
					tt.args, got, err, *storage, *dry, *names, tt.want, tt.storage, tt.dry, tt.names)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--storag", "S"}, "unknown flag --storag; did you mean --storage?"},
		{[]string{"--frobnicate"}, "unknown flag --frobnicate"},
		{[]string{"DIR", "--storage"}, "--storage needs a value: --storage DIR"},
		// A forgotten value: the next word is a flag, not the value.
		{[]string{"--storage", "--dry-run"}, "--storage needs a value: --storage DIR (--dry-run is a flag; to give it as the value, write --storage=--dry-run)"},
		{[]string{"--storage", "--valid-for=1d"}, "--storage needs a value: --storage DIR (--valid-for=1d is a flag; to give it as the value, write --storage=--valid-for=1d)"},
		{[]string{"--valid-for", "soon"}, `invalid value "soon" for --valid-for: want a duration such as 7d, 36h, 1h30m or 30s`},
		// A deprecated name is never suggested: the new one is.
		{[]string{"--dais", "3"}, "unknown flag --dais"},
		{[]string{"--valid-fro", "3d"}, "unknown flag --valid-fro; did you mean --valid-for?"},
	} {
		fs, _, _, _, _ := testFlags()
		if _, err := Parse(fs, tt.args, false, nil); err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %q", tt.args, err, tt.want)
		}
	}
	fs, _, _, _, _ := testFlags()
	if _, err := Parse(fs, []string{"x", "--help"}, false, nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Parse(--help) = %v, want flag.ErrHelp", err)
	}
}

// TestDeprecated: an old name sets the new flag through convert and
// writes one note; help and the suggestions leave it out.
func TestDeprecated(t *testing.T) {
	fs, _, _, _, valid := testFlags()
	var notes bytes.Buffer
	if _, err := Parse(fs, []string{"--days", "2"}, false, &notes); err != nil {
		t.Fatal(err)
	}
	if time.Duration(*valid) != 48*time.Hour {
		t.Errorf("--days 2 set --valid-for %s, want 48h", time.Duration(*valid))
	}
	if want := "certkeeper: --days is deprecated and will be removed; use --valid-for\n"; notes.String() != want {
		t.Errorf("note %q, want %q", notes.String(), want)
	}
	if to := AliasOf(fs.Lookup("days")); to != "valid-for" {
		t.Errorf("AliasOf(days) = %q, want valid-for", to)
	}
	if to := AliasOf(fs.Lookup("valid-for")); to != "" {
		t.Errorf("AliasOf(valid-for) = %q, want \"\"", to)
	}
	var help bytes.Buffer
	PrintFlags(&help, fs, []HelpGroup{{Title: "Storage", Flags: []string{"storage"}}})
	if strings.Contains(help.String(), "--days") || !strings.Contains(help.String(), "Storage:\n  --storage DIR\n") ||
		!strings.Contains(help.String(), "Other:\n  -d NAME\n") {
		t.Errorf("PrintFlags:\n%s\nwant --storage under Storage, -d under Other, no --days", help.String())
	}
}

func TestGroup(t *testing.T) {
	kinds := map[string]bool{"fallback": true, "dry-run": false}
	flags, name, rest, help, err := Group(kinds, []string{"start", "stop"}, []string{"--fallback", "ADDR", "--dry-run", "start", "--listen", "L"})
	if err != nil || name != "start" || help || !slices.Equal(flags, []string{"--fallback", "ADDR", "--dry-run"}) || !slices.Equal(rest, []string{"--listen", "L"}) {
		t.Errorf("Group = %q, %q, %q, %v, %v", flags, name, rest, help, err)
	}
	if _, _, _, help, _ := Group(kinds, nil, []string{"-h", "start"}); !help {
		t.Error("Group(-h start): help false")
	}
	if _, _, _, _, err := Group(kinds, []string{"start", "stop"}, []string{"--", "start"}); err == nil || err.Error() != "-- must come after a command: start, stop" {
		t.Errorf("Group(-- start) = %v", err)
	}
	if _, _, _, _, err := Group(kinds, nil, []string{"--fallbak", "x"}); err == nil || err.Error() != "unknown flag --fallbak; did you mean --fallback?" {
		t.Errorf("Group(--fallbak) = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7d", 7 * 24 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"300ms", 300 * time.Millisecond, true},
		{" 2h ", 2 * time.Hour, true},
		{"-1h", 0, false},
		{"d", 0, false},
		{"soon", 0, false},
	} {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseDuration(%q) = %s, %v; want %s, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"status", "status", 0},
		{"statsu", "status", 1}, // transposition
		{"alow", "allow", 1},
		{"renwe", "renew", 1},
		{"kitten", "sitting", 3},
		{"ca", "xy", 2},
		{"ünï", "uni", 2},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	for _, tt := range []struct {
		word       string
		candidates []string
		want       string
	}{
		{"statsu", []string{"server", "status", "storage"}, "status"},
		{"xy", []string{"ca"}, ""},
		{"dd", []string{"d", "dns"}, "d"},
		{"frobnicate", []string{"proxy", "cert"}, ""},
	} {
		if got := Suggest(tt.word, tt.candidates); got != tt.want {
			t.Errorf("Suggest(%q, %q) = %q, want %q", tt.word, tt.candidates, got, tt.want)
		}
	}
}

// TestList: without Repeat a use replaces the default, and a second use
// is refused; with it, uses add.
func TestList(t *testing.T) {
	one, many := []string{"letsencrypt"}, []string(nil)
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.Var(&List{Values: &one}, "ca", "")
	fs.Var(&List{Values: &many, Repeat: true}, "d", "")
	if _, err := Parse(fs, []string{"--ca", "local", "-d", "a", "-d", "b"}, false, nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(one, []string{"local"}) || !slices.Equal(many, []string{"a", "b"}) {
		t.Errorf("ca %q, d %q; want [local], [a b]", one, many)
	}
	if _, err := Parse(fs, []string{"--ca", "staging", "--ca", "local"}, false, nil); err == nil {
		t.Error("a List without Repeat took two values")
	}
}

// TestGivenTwice: a flag that takes one value given two different ones is
// refused, naming both, under any of its names (a deprecated alias); the
// same value twice, a boolean twice and a repeatable flag pass.
func TestGivenTwice(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	outDir := fs.String("out-dir", "", "")
	Deprecated(fs, "out", "out-dir", nil)
	fs.Bool("force", false, "")
	var names Strings
	fs.Var(&names, "d", "")
	err := func(args ...string) error { _, err := Parse(fs, args, false, io.Discard); return err }
	if e := err("renew", "--out-dir", "A", "--out-dir", "B"); e == nil || e.Error() != `--out-dir given twice ("A", then "B"): it takes one value; give it once` {
		t.Errorf("--out-dir A --out-dir B: %v", e)
	}
	if e := err("--out", "A", "--out-dir=B"); e == nil || !strings.Contains(e.Error(), "--out-dir given twice") {
		t.Errorf("--out A --out-dir=B: %v; want refused as --out-dir given twice", e)
	}
	if e := err("--out-dir", "A", "--out-dir", "A", "--force", "--force", "-d", "a", "-d", "b"); e != nil || *outDir != "A" {
		t.Errorf("the same value twice, a boolean twice, -d twice: %v", e)
	}
}

func TestSettings(t *testing.T) {
	var s Settings
	for _, v := range []string{"b=2", "a=1", "b=3", "c="} {
		if err := s.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if got := s.String(); got != "a=1,b=3,c=" {
		t.Errorf("String() = %q, want a=1,b=3,c=", got)
	}
	for _, v := range []string{"novalue", "=x"} {
		// The message fits a NAME=FILE flag too (it said NAME=VALUE).
		want := fmt.Sprintf("no NAME= in %q: give NAME=VALUE (NAME=FILE for a file flag)", v)
		if err := s.Set(v); err == nil || err.Error() != want {
			t.Errorf("Set(%q) = %v, want %q", v, err, want)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"2027-01-31", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{"2027-01-31T10:00:00Z", time.Date(2027, 1, 31, 10, 0, 0, 0, time.UTC)},
		{"2d", now.Add(48 * time.Hour)},
		{"1800000000", time.Unix(1800000000, 0)},
	} {
		if got, err := ParseTime(tt.in, now); err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"soon", "-1", "0s"} {
		if _, err := ParseTime(in, now); err == nil || !strings.Contains(err.Error(), "give a date") {
			t.Errorf("ParseTime(%q) = %v, want an error that says what to give", in, err)
		}
	}
}
