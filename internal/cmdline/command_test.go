package cmdline

import (
	"context"
	"errors"
	"flag"
	"slices"
	"testing"
)

type env struct{}

// testTree is "prog" with a group "cert" of "issue" (certbot's
// certonly, lego's run) and "renew", and "status".
func testTree() *Command[env] {
	leaf := func(usage string, flags func(fs *flag.FlagSet)) *Command[env] {
		return &Command[env]{UsageLine: usage, Flags: flags, Run: func(context.Context, env, []string) error { return nil }}
	}
	issue := leaf("prog cert issue [flags] NAME", func(fs *flag.FlagSet) { fs.String("out", "", "") })
	issue.OtherNames = []string{"certonly (certbot)", "run (lego)"}
	renew := leaf("prog cert renew [flags]", func(fs *flag.FlagSet) { fs.Bool("force", false, "") })
	cert := &Command[env]{UsageLine: "prog cert COMMAND", Commands: []*Command[env]{issue, renew}}
	return &Command[env]{UsageLine: "prog COMMAND", Commands: []*Command[env]{cert, leaf("prog status", nil)}}
}

func global(fs *flag.FlagSet) { fs.String("log-level", "warn", "") }

func TestResolve(t *testing.T) {
	top := testTree()
	cmd, words, help, missing, err := Resolve(top, []string{"cert", "--log-level", "debug", "issue", "a.example", "--out", "o"}, global)
	if err != nil || help || missing || cmd.FullName() != "cert issue" || cmd.Name() != "issue" ||
		!slices.Equal(words, []string{"--log-level", "debug", "a.example", "--out", "o"}) {
		t.Errorf("Resolve = %v, %q, %v, %v, %v", cmd, words, help, missing, err)
	}
	if cmd, _, help, _, _ := Resolve(top, []string{"help", "cert", "renew"}, global); !help || cmd.FullName() != "cert renew" {
		t.Errorf("Resolve(help cert renew) = %v, help %v", cmd, help)
	}
	if cmd, _, help, _, _ := Resolve(top, []string{"cert", "-h"}, global); !help || cmd.FullName() != "cert" {
		t.Errorf("Resolve(cert -h) = %v, help %v", cmd, help)
	}
	if cmd, _, _, missing, _ := Resolve(top, []string{"cert"}, global); !missing || cmd.FullName() != "cert" {
		t.Errorf("Resolve(cert) = %v, missing %v", cmd, missing)
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		group   string
		unknown bool
		want    string
	}{
		{[]string{"cert", "renwe"}, "cert", true, `unknown command "prog cert renwe"; did you mean "prog cert renew"?`},
		{[]string{"frobnicate"}, "", true, `unknown command "prog frobnicate"`},
		// A command under a group, named without it; another tool's name.
		{[]string{"renew"}, "", true, `unknown command "prog renew"; did you mean "prog cert renew"?`},
		{[]string{"certonly"}, "", true, `unknown command "prog certonly"; did you mean "prog cert issue" (certbot's certonly)?`},
		{[]string{"cert", "run"}, "cert", true, `unknown command "prog cert run"; did you mean "prog cert issue" (lego's run)?`},
		{[]string{"cert", "--frobnicate", "issue"}, "cert", false, "unknown flag --frobnicate"},
		{[]string{"cert", "--", "issue"}, "cert", false, "-- must come after a command: issue, renew"},
		// Help of a command that is not one: the same error, not the
		// top-level help with exit 0 (newcomer trial).
		{[]string{"help", "crt"}, "", true, `unknown command "prog crt"; did you mean "prog cert"?`},
		{[]string{"help", "cert", "renwe"}, "cert", true, `unknown command "prog cert renwe"; did you mean "prog cert renew"?`},
		{[]string{"cert", "help", "certonly"}, "cert", true, `unknown command "prog cert certonly"; did you mean "prog cert issue" (certbot's certonly)?`},
	} {
		_, _, _, _, err := Resolve(testTree(), tt.args, global)
		gerr, ok := errors.AsType[*GroupError](err)
		if !ok || gerr.Group != tt.group || gerr.Unknown != tt.unknown || err.Error() != tt.want {
			t.Errorf("Resolve(%q) = %#v, want group %q, unknown %v, %q", tt.args, err, tt.group, tt.unknown, tt.want)
		}
	}
}

func TestFlagKinds(t *testing.T) {
	kinds := testTree().FlagKinds(global)
	want := map[string]bool{"log-level": true, "out": true, "force": false}
	if len(kinds) != len(want) {
		t.Errorf("FlagKinds = %v, want %v", kinds, want)
	}
	for name, takesValue := range want {
		if v, ok := kinds[name]; !ok || v != takesValue {
			t.Errorf("FlagKinds[%s] = %v, %v; want %v", name, v, ok, takesValue)
		}
	}
}
