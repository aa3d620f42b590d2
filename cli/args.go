package cli

import (
	"flag"

	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// The command line is parsed by package internal/cmdline rather than by
// flag.FlagSet.Parse, which stops at the first argument: flags may follow
// arguments and come before a subcommand's name. This file joins that
// machinery to the command table.

// groupArgs splits the words after a command group's name: the flags before
// the subcommand (given for the subcommand, which must define them), the
// subcommand's name ("" if none is given) and the words after it. A flag
// takes the next word as its value when one of the group's commands defines
// it with a value (TestFlagKindsAgree checks that none defines it as
// boolean too). help reports whether -h or --help came before the
// subcommand.
func groupArgs(c *Command, args []string) (flags []string, name string, rest []string, help bool, err error) {
	return cmdline.Group(groupFlags(c), c.commandNames(), args)
}

// groupFlags maps the name of every flag that a command under c defines
// (the global flags included) to whether it takes a value.
func groupFlags(c *Command) map[string]bool {
	kinds := make(map[string]bool)
	var walk func(c *Command)
	walk = func(c *Command) {
		for _, sub := range c.Commands {
			walk(sub)
		}
		if len(c.Commands) > 0 {
			return
		}
		c.flagSet().VisitAll(func(f *flag.Flag) { kinds[f.Name] = kinds[f.Name] || !cmdline.IsBool(f) })
	}
	walk(c)
	return kinds
}

// flagSet is a new FlagSet with the global flags and c's own.
func (c *Command) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet(c.FullName(), flag.ContinueOnError)
	globalFlags(fs)
	if c.Flags != nil {
		c.Flags(fs)
	}
	return fs
}

// commandNames are the names of c's subcommands.
func (c *Command) commandNames() []string {
	names := make([]string, 0, len(c.Commands))
	for _, sub := range c.Commands {
		names = append(names, sub.Name())
	}
	return names
}
