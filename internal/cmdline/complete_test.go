package cmdline

import (
	"context"
	"flag"
	"slices"
	"strings"
	"testing"
)

func TestComplete(t *testing.T) {
	top := testTree()
	issue, _ := top.Find([]string{"cert", "issue"})
	issue.Flags = func(fs *flag.FlagSet) {
		fs.String("out", "", "")
		fs.String("d", "", "")
		fs.String("challenge", "", "")
		fs.Bool("dry-run", false, "")
		Deprecated(fs, "outdir", "out", nil)
	}
	issue.Spellings = []Spelling{{Tool: "certbot", Name: "domains", To: "d"}}
	top.Commands = append(top.Commands, &Command[env]{UsageLine: "prog exec [flags] COMMAND", RawArgs: true,
		Run: func(context.Context, env, []string) error { return nil }},
		&Command[env]{UsageLine: "prog shell SHELL", ArgValues: []string{"bash", "zsh", "fish"}, Run: func(context.Context, env, []string) error { return nil }})
	values := map[string][]string{"challenge": {"http-01", "dns-01"}, "log-level": {"debug", "info"}}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{nil, "cert status exec shell help"},
		{[]string{"shell", ""}, "bash zsh fish"}, // an argument's values
		{[]string{"shell", "z"}, "zsh"},
		{[]string{"c"}, "cert"},
		{[]string{"cert", ""}, "issue renew"},
		{[]string{"--log-level", "debug", "cert", "i"}, "issue"},                              // a global flag's value is skipped
		{[]string{"cert", "--log-level", "info", "r"}, "renew"},                               // a flag before the subcommand's name
		{[]string{"cert", "issue", "-"}, "--challenge --dry-run --help --log-level --out -d"}, // no deprecated name, no spelling
		{[]string{"cert", "issue", "--dry-run", "a.example", "--c"}, "--challenge"},
		{[]string{"cert", "issue", "--challenge", ""}, "http-01 dns-01"},
		{[]string{"cert", "issue", "--challenge", "d"}, "dns-01"},
		{[]string{"cert", "issue", "--challenge=h"}, "--challenge=http-01"},
		{[]string{"cert", "issue", "--out", ""}, ""},     // a value with no list: file names
		{[]string{"cert", "issue", "--dry-run", ""}, ""}, // an argument
		{[]string{"cert", "issue", "--", "-"}, ""},       // after --, arguments only
		{[]string{"cert", "-"}, "--help --log-level"},    // a group: the global flags
		{[]string{"--log-level", ""}, "debug info"},
		{[]string{"exec", "cert", ""}, ""}, // a command line passed on verbatim
		{[]string{"status", ""}, ""},
	} {
		got := strings.Join(Complete(top, tc.words, global, values), " ")
		if got != tc.want {
			t.Errorf("Complete(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestCompletionScript(t *testing.T) {
	for _, sh := range Shells {
		s, err := CompletionScript(sh, "cert-keeper")
		if err != nil || !strings.Contains(s, " completion --words -- ") || !strings.Contains(s, "_cert_keeper_complete cert-keeper") &&
			!strings.Contains(s, "complete -c cert-keeper -f -a '(_cert_keeper_complete)'") {
			t.Errorf("CompletionScript(%s): %v\n%s", sh, err, s)
		}
	}
	if _, err := CompletionScript("tcsh", "prog"); err == nil || !strings.Contains(err.Error(), "bash, zsh, fish") {
		t.Errorf("CompletionScript(tcsh) = %v, want the shells listed", err)
	}
	if !slices.Equal(Shells, []string{"bash", "zsh", "fish"}) {
		t.Errorf("Shells = %q", Shells)
	}
}
