package cmdline

import (
	"flag"
	"slices"
	"strings"
)

// Shell completion is answered by the program itself: the scripts
// (CompletionScript) pass the words typed so far to a hidden entry point,
// which calls Complete, so the completions follow the command tree, its
// flags and their values without a script to regenerate when they change.

// Complete returns the completions of the last of words, which are the
// words of a command line after the program's name, the last being the
// one the cursor is in ("" after a space): the names of the subcommands
// of the command the words name (and "help" at the top), its flags
// (--email, -d) when the word starts with "-", and for a flag's value the
// values listed for it in values (by flag name) or for "--name=" the same
// with that prefix. Deprecated names and other tools' spellings are left
// out, as in --help. nil leaves the word to the shell (file names).
func Complete[E any](root *Command[E], words []string, global func(fs *flag.FlagSet), values map[string][]string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	c, valueOf := root, ""
	for i := 0; i < len(before); i++ {
		w := before[i]
		if w == "--" {
			return nil // arguments only
		}
		if name, _, hasValue, ok := flagToken(w); ok {
			if !hasValue && c.takesValue(name, global) {
				if i == len(before)-1 {
					valueOf = name
				}
				i++
			}
			continue
		}
		sub := c.Lookup(w)
		if sub == nil {
			if c.RawArgs {
				return nil // a command line passed on verbatim
			}
			continue // an argument
		}
		c = sub
	}
	if valueOf != "" {
		return withPrefix(values[valueOf], "", cur)
	}
	if name, value, hasValue, ok := flagToken(cur); ok && hasValue {
		return withPrefix(values[name], cur[:len(cur)-len(value)], value)
	}
	if strings.HasPrefix(cur, "-") {
		return withPrefix(c.flagNames(global), "", cur)
	}
	if len(c.Commands) == 0 {
		return withPrefix(c.ArgValues, "", cur) // none: the shell's (file names)
	}
	names := c.CommandNames()
	if c == root {
		names = append(names, "help")
	}
	return withPrefix(names, "", cur)
}

// takesValue reports whether c's flag name takes a value: for a group,
// whether any of its commands' flags of that name does (FlagKinds).
func (c *Command[E]) takesValue(name string, global func(fs *flag.FlagSet)) bool {
	if len(c.Commands) > 0 {
		return c.FlagKinds(global)[name]
	}
	f := c.FlagSet(global).Lookup(name)
	return f != nil && !IsBool(f)
}

// flagNames are c's flags as typed (--email, -d), sorted, without the
// hidden ones; a group offers the global flags and --help.
func (c *Command[E]) flagNames(global func(fs *flag.FlagSet)) []string {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	global(fs)
	if len(c.Commands) == 0 {
		fs = c.FlagSet(global)
	}
	names := []string{"--help"}
	fs.VisitAll(func(f *flag.Flag) {
		if !hidden(f) {
			names = append(names, FlagName(f.Name))
		}
	})
	slices.Sort(names)
	return names
}

// withPrefix returns prefix+c for each candidate c that starts with typed.
func withPrefix(candidates []string, prefix, typed string) []string {
	var out []string
	for _, c := range candidates {
		if strings.HasPrefix(c, typed) {
			out = append(out, prefix+c)
		}
	}
	return out
}
