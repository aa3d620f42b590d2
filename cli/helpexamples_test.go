package cli

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// TestHelpExamples parses every certkeeper command line shown in a
// command's --help text as run would: the command words must name a
// command, every flag must exist and take its value, and the arguments
// must be ones the command accepts. Nothing is run. A user copies these
// lines first; an example that names a removed flag or a renamed command
// fails here rather than in a terminal.
func TestHelpExamples(t *testing.T) {
	var walk func(c *Command)
	n := 0
	walk = func(c *Command) {
		for _, line := range helpExampleLines(c.Long) {
			for _, args := range certkeeperInvocations(line) {
				n++
				if err := parseExample(args); err != nil {
					t.Errorf("certkeeper %s --help shows %q: %v", c.FullName(), line, err)
				}
			}
		}
		for _, sub := range c.Commands {
			walk(sub)
		}
	}
	walk(root())
	// The help texts show over sixty examples; far fewer means the
	// extraction below stopped finding them.
	if n < 50 {
		t.Errorf("found %d example command lines in the help texts, want at least 50", n)
	}
}

// parseExample resolves and parses args (the words after "certkeeper")
// as run does, up to the point where run would call the command.
func parseExample(args []string) error {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return nil
	}
	cmd, words, help, missing, err := cmdline.Resolve(root(), args, globalFlags)
	switch {
	case err != nil:
		return err
	case missing:
		return errors.New("names a command group, not a command")
	case help:
		return nil
	}
	rest, err := cmdline.Parse(cmd.FlagSet(globalFlags), words, cmd.RawArgs, io.Discard)
	if err != nil {
		return err
	}
	return cmd.CheckArgs(rest)
}

// helpExampleLines are the indented lines of a help text that start a
// certkeeper command (after an optional sudo), with continuation lines
// (ending in a backslash) joined. A text that shows a "$ " prompt shows
// output too: then only the prompted lines are commands.
func helpExampleLines(long string) []string {
	var out []string
	lines := strings.Split(long, "\n")
	prompted := strings.Contains(long, "\n\t$ ")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "\t") || prompted && !strings.HasPrefix(l, "\t$ ") {
			continue
		}
		l = strings.TrimPrefix(strings.TrimSpace(l), "$ ")
		if !strings.HasPrefix(strings.TrimPrefix(l, "sudo "), "certkeeper ") && !strings.Contains(l, "| certkeeper ") {
			continue
		}
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		out = append(out, l)
	}
	return out
}

// certkeeperInvocations splits a shell command line into its simple
// commands (at |, ||, &&, ; and &; a # comment and redirections dropped)
// and returns the arguments of each that runs certkeeper, directly, under
// sudo, through ssh HOST, by a path (./certkeeper) or as go run
// ./cmd/certkeeper. A last word "..." stands for the reader's other
// flags and is dropped.
func certkeeperInvocations(line string) [][]string {
	var out [][]string
	for _, words := range shellCommands(line) {
		for len(words) > 0 && words[0] == "sudo" {
			words = words[1:]
		}
		if len(words) > 2 && words[0] == "ssh" {
			words = words[2:]
		}
		if len(words) > 0 && words[len(words)-1] == "..." {
			words = words[:len(words)-1]
		}
		if len(words) > 3 && words[0] == "go" && words[1] == "run" && path.Base(words[2]) == "certkeeper" {
			words = words[2:]
		}
		if len(words) > 0 && path.Base(words[0]) == "certkeeper" {
			out = append(out, words[1:])
		}
	}
	return out
}

// shellCommands splits line into simple commands and their words, with
// POSIX shell quoting ('...', "...", backslash outside single quotes) and
// $(...) kept whole.
// Redirections (>, <, 2>, with their target) are dropped; # outside quotes
// at the start of a word ends the line. Enough for help examples, not a
// shell.
func shellCommands(line string) [][]string {
	var cmds [][]string
	var words []string
	var word strings.Builder
	inWord, redirect := false, false
	endWord := func() {
		if inWord {
			if redirect {
				redirect = false
			} else {
				words = append(words, word.String())
			}
		}
		word.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				j = len(line) - i - 1
			}
			word.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				word.WriteByte(line[i])
			}
		case c == '$' && i+1 < len(line) && line[i+1] == '(':
			// A command substitution is one word's part, spaces and all.
			depth, j := 0, i
			for ; j < len(line); j++ {
				if line[j] == '(' {
					depth++
				} else if line[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			word.WriteString(line[i:min(j+1, len(line))])
			inWord = true
			i = j
		case c == '\\' && i+1 < len(line):
			i++
			word.WriteByte(line[i])
			inWord = true
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !inWord:
			endCmd()
			return cmds
		case c == '|' || c == '&' || c == ';':
			endCmd()
		case c == '>' || c == '<':
			// "2>" and ">file": the digit is the redirection's, not a word.
			if inWord && word.String() == "2" {
				word.Reset()
				inWord = false
			}
			endWord()
			redirect = true
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

func TestShellCommands(t *testing.T) {
	for _, tc := range []struct {
		line string
		want [][]string
	}{
		{`certkeeper cert renew --post-hook 'systemctl reload nginx'`,
			[][]string{{"certkeeper", "cert", "renew", "--post-hook", "systemctl reload nginx"}}},
		{`certkeeper alpn-proxy status && certkeeper alpn-proxy stop`,
			[][]string{{"certkeeper", "alpn-proxy", "status"}, {"certkeeper", "alpn-proxy", "stop"}}},
		{`certkeeper ca root > root.pem 2>/dev/null &`,
			[][]string{{"certkeeper", "ca", "root"}}},
		{`certkeeper status --json | jq '.[] | select(.state != "fine")'`,
			[][]string{{"certkeeper", "status", "--json"}, {"jq", `.[] | select(.state != "fine")`}}},
		{`certkeeper alpn-proxy start --proxy-protocol   # nginx: listen 443 ssl;`,
			[][]string{{"certkeeper", "alpn-proxy", "start", "--proxy-protocol"}}},
		{`certkeeper storage export --out ck-$(date +%F).tar.gz`,
			[][]string{{"certkeeper", "storage", "export", "--out", "ck-$(date +%F).tar.gz"}}},
		{`certkeeper x --a "b \"c\"" d\ e`,
			[][]string{{"certkeeper", "x", "--a", `b "c"`, "d e"}}},
	} {
		got := shellCommands(tc.line)
		if len(got) != len(tc.want) {
			t.Errorf("%q: got %q, want %q", tc.line, got, tc.want)
			continue
		}
		for i := range got {
			if strings.Join(got[i], "\x00") != strings.Join(tc.want[i], "\x00") {
				t.Errorf("%q: command %d is %q, want %q", tc.line, i, got[i], tc.want[i])
			}
		}
	}
}

// TestHelpFiles checks that help/ holds a text for every command (root
// panics otherwise) and nothing else: a file left behind by a removed or
// renamed command would be help nobody reads. It also checks what a help
// text says of the code: cert revoke's list of reasons is the one
// acmeca.ParseRevocationReason takes.
func TestHelpFiles(t *testing.T) {
	want := map[string]bool{}
	var walk func(c *Command)
	walk = func(c *Command) {
		name := strings.ReplaceAll(c.FullName(), " ", "-")
		if name == "" {
			name = "certkeeper"
		}
		want["help/"+name+".txt"] = true
		if strings.TrimSpace(c.Long) == "" {
			t.Errorf("certkeeper %s: empty help text", c.FullName())
		}
		for _, sub := range c.Commands {
			walk(sub)
		}
	}
	walk(root())
	files, err := fs.Glob(helpTexts, "help/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !want[f] {
			t.Errorf("cli/%s names no command: remove it, or rename it for the command it is about", f)
		}
	}
	if len(files) != len(want) {
		t.Errorf("%d help files for %d commands", len(files), len(want))
	}
	revoke, _, _, _, err := cmdline.Resolve(root(), []string{"cert", "revoke"}, globalFlags)
	if err != nil {
		t.Fatal(err)
	}
	if reasons := acmeca.RevocationReasons(); !strings.Contains(revoke.Long, "Reasons (RFC 5280): "+reasons+",") {
		t.Errorf("cli/help/cert-revoke.txt lists other reasons than %s: update it", reasons)
	}
}
