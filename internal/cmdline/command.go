package cmdline

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
)

// Command is one command or command group, in the shape of cmd/go's
// Command: a usage line, a short and a long description that teaches by
// example, its own flag set, and Run. E is what Run is given besides its
// context and arguments: the program's environment (package cli's *Env).
type Command[E any] struct {
	// UsageLine is "certkeeper cert issue [flags]"; its words up to the
	// first flag or argument name the command.
	UsageLine string
	// Short is a one-line description for command lists.
	Short string
	// Long is the full help text, with examples.
	Long string
	// Flags sets up the command's flags on fs; nil means none.
	Flags func(fs *flag.FlagSet)
	// Run runs the command with the arguments left after flags. What its
	// error means (bad usage or failure) is the program's to decide.
	Run func(ctx context.Context, env E, args []string) error
	// Commands are the subcommands of a group.
	Commands []*Command[E]
	// RawArgs ends the flags at the first argument, as "--" does: the
	// arguments are a command line that Run passes on verbatim ("service
	// install proxy --config FILE"). Otherwise flags may follow arguments.
	RawArgs bool
	// Serves marks a long-running service (proxy, server): its text log
	// keeps slog's time and level fields for a journal, where a command
	// a person runs writes lines like its own messages.
	Serves bool
	// TakesArgs says Run is given arguments and checks them itself.
	// Without it (or RawArgs), arguments are bad usage, refused before
	// Run (CheckArgs), and ArgsHint says where they go instead ("names go
	// with -d"): a user who typed "cert issue a.example" learns of -d.
	TakesArgs bool
	ArgsHint  string
	// ArgValues, if set, are the values an argument takes ("bash",
	// "zsh"), offered by shell completion (Complete).
	ArgValues []string
	// Spellings are other tools' spellings of its flags that it accepts
	// (AddSpellings): certbot's -m for --email.
	Spellings []Spelling
	// OtherNames are other tools' names of this command, with the tool
	// ("certonly (certbot)"), or names a user may guess for it ("remove"):
	// an unknown command that is one of them is answered with this
	// command's name. They are not run as it: the
	// tools' commands differ in more than the name.
	OtherNames []string
}

// CheckArgs refuses the arguments args of a command that takes none.
func (c *Command[E]) CheckArgs(args []string) error {
	switch {
	case c.TakesArgs || c.RawArgs || len(args) == 0:
		return nil
	case c.ArgsHint != "":
		return fmt.Errorf("unexpected arguments %q: %s", args, c.ArgsHint)
	}
	return fmt.Errorf("unexpected arguments %q: %s takes no arguments", args, c.FullName())
}

// Name is the last word of the command's name ("issue" for "cert issue").
func (c *Command[E]) Name() string {
	words := c.words()
	return words[len(words)-1]
}

// FullName is the command path without the program's name ("cert issue").
func (c *Command[E]) FullName() string { return strings.Join(c.words()[1:], " ") }

// words are the words of UsageLine that name the command, the program's
// name first.
func (c *Command[E]) words() []string {
	var words []string
	for _, w := range strings.Fields(c.UsageLine) {
		if strings.HasPrefix(w, "[") || strings.HasPrefix(w, "-") || strings.ToUpper(w) == w {
			break
		}
		words = append(words, w)
	}
	return words
}

// below says where a command called name is under c's subcommands
// ("issue" is "certkeeper cert issue") or which command another tool's
// name stands for ("certonly" is certbot's "certkeeper cert issue"); ""
// if nowhere.
func (c *Command[E]) below(name string) string {
	var found []string
	var walk func(c *Command[E], depth int)
	walk = func(c *Command[E], depth int) {
		for _, sub := range c.Commands {
			quoted := fmt.Sprintf("%q", strings.Join(sub.words(), " "))
			match := depth > 0 && sub.Name() == name
			for _, o := range sub.OtherNames {
				if n, tool, ok := strings.Cut(o, " ("); n == name && ok && !match {
					quoted += fmt.Sprintf(" (%s's %s)", strings.TrimSuffix(tool, ")"), name)
					match = true
				} else if n == name {
					match = true
				}
			}
			if match {
				found = append(found, quoted)
			}
			walk(sub, depth+1)
		}
	}
	walk(c, 0)
	if len(found) == 0 {
		return ""
	}
	return "did you mean " + strings.Join(found, " or ") + "?"
}

// Lookup is c's subcommand called name, or nil.
func (c *Command[E]) Lookup(name string) *Command[E] {
	for _, sub := range c.Commands {
		if sub.Name() == name {
			return sub
		}
	}
	return nil
}

// Find walks args down the tree from c as far as they name commands, and
// returns the last command named and the words after it.
func (c *Command[E]) Find(args []string) (*Command[E], []string) {
	for len(args) > 0 {
		sub := c.Lookup(args[0])
		if sub == nil {
			break
		}
		c, args = sub, args[1:]
	}
	return c, args
}

// CommandNames are the names of c's subcommands.
func (c *Command[E]) CommandNames() []string {
	names := make([]string, 0, len(c.Commands))
	for _, sub := range c.Commands {
		names = append(names, sub.Name())
	}
	return names
}

// FlagSet is a new FlagSet with the flags global sets up (those every
// command takes) and c's own.
func (c *Command[E]) FlagSet(global func(fs *flag.FlagSet)) *flag.FlagSet {
	fs := flag.NewFlagSet(c.FullName(), flag.ContinueOnError)
	global(fs)
	if c.Flags != nil {
		c.Flags(fs)
	}
	AddSpellings(fs, c.Spellings)
	return fs
}

// FlagKinds maps the name of every flag that a command under c defines
// (the global flags included) to whether it takes a value.
func (c *Command[E]) FlagKinds(global func(fs *flag.FlagSet)) map[string]bool {
	kinds := make(map[string]bool)
	var walk func(c *Command[E])
	walk = func(c *Command[E]) {
		for _, sub := range c.Commands {
			walk(sub)
		}
		if len(c.Commands) > 0 {
			return
		}
		c.FlagSet(global).VisitAll(func(f *flag.Flag) { kinds[f.Name] = kinds[f.Name] || !IsBool(f) })
	}
	walk(c)
	return kinds
}

// GroupError is a mistake in the words after a command group's name: a
// flag no command of the group defines, a "--" before any command, or an
// unknown command name.
type GroupError struct {
	// Group is the group's full name ("cert"; "" for the program itself).
	Group string
	// Unknown reports whether the mistake is an unknown command name,
	// whose message names the whole command.
	Unknown bool
	Err     error
}

func (e *GroupError) Error() string { return e.Err.Error() }

func (e *GroupError) Unwrap() error { return e.Err }

// unknown is the error for name, which is not a command of the group c
// (root is the whole tree): with a hint or a suggestion when one fits.
func (c *Command[E]) unknown(root *Command[E], name string) *GroupError {
	msg := fmt.Sprintf("unknown command %q", strings.Join(append(c.words(), name), " "))
	if hint := c.below(name); hint != "" {
		msg += "; " + hint
	} else if s := Suggest(name, append(c.CommandNames(), "help")); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", strings.Join(append(c.words(), s), " "))
	} else if hint := root.below(name); c != root && hint != "" {
		msg += "; " + hint // a command of another group: "cert list" is status
	}
	return &GroupError{Group: c.FullName(), Unknown: true, Err: errors.New(msg)}
}

// Resolve walks args from c down to the command they name (a command
// with no subcommands) and returns it with the words for its own flags
// and arguments: flags given before its name (Group), then the words
// after it. Instead, help reports that -h, --help or "help" came before a
// command's name (cmd is the command named after it, for its help), and
// missing that a group was given without a command (cmd is the group).
// A mistake is a *GroupError.
func Resolve[E any](c *Command[E], args []string, global func(fs *flag.FlagSet)) (cmd *Command[E], words []string, help, missing bool, err error) {
	var early []string // flags given before the subcommand's name
	root := c
	for len(c.Commands) > 0 {
		flags, name, after, askHelp, err := Group(c.FlagKinds(global), c.CommandNames(), args)
		switch {
		case err != nil:
			return nil, nil, false, false, &GroupError{Group: c.FullName(), Err: err}
		case askHelp || name == "help":
			target, rest := c.Find(after)
			if len(rest) > 0 && len(target.Commands) > 0 && !strings.HasPrefix(rest[0], "-") { // help of a command that is not one
				return nil, nil, false, false, target.unknown(root, rest[0])
			}
			return target, nil, true, false, nil
		case name == "":
			return c, nil, false, true, nil
		}
		sub := c.Lookup(name)
		if sub == nil {
			return nil, nil, false, false, c.unknown(root, name)
		}
		early = append(early, flags...)
		c, args = sub, after
	}
	return c, append(early, args...), false, false, nil
}
