package cli

import (
	"flag"
	"io"
	"sort"
	"strings"
)

// The command line is parsed here rather than by flag.FlagSet.Parse, which
// stops at the first argument: users coming from certbot, lego or GNU tools
// write "import --from certbot DIR --storage S" and
// "alpn-proxy --fallback ADDR start", and expect both to work. The FlagSet
// still defines the flags, their kinds and their values; only the order in
// which they may appear differs.

// boolFlag is the flag package's optional interface of flags that take no
// value ("--iptables", "--iptables=false").
type boolFlag interface {
	flag.Value
	IsBoolFlag() bool
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(boolFlag)
	return ok && b.IsBoolFlag()
}

// flagToken splits a command-line word that is a flag ("-x", "--name",
// "--name=value") into its name and value. It reports false for a word that
// is an argument: "-" (stdin) and "--" (the end of flags) are not flags.
func flagToken(arg string) (name, value string, hasValue, ok bool) {
	if len(arg) < 2 || arg[0] != '-' || arg == "--" {
		return "", "", false, false
	}
	name = strings.TrimPrefix(arg[1:], "-")
	if name == "" || name[0] == '-' || name[0] == '=' {
		return "", "", false, false
	}
	name, value, hasValue = strings.Cut(name, "=")
	return name, value, hasValue, true
}

// flagName is how help writes a flag: -d, --storage.
func flagName(name string) string {
	if len([]rune(name)) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isHelp reports whether a flag name asks for help.
func isHelp(name string) bool { return name == "h" || name == "help" }

// parseArgs sets the flags in args on fs and returns the other words, the
// arguments, in order. Flags may come before, between and after arguments;
// "--" ends them, and every word after it is an argument. A flag that takes
// a value takes the next word whatever it looks like ("--post-hook
// 'systemctl reload nginx'", "--rulespec -p"), as the flag package does; a
// boolean flag never does ("--iptables=false" sets it false). With
// stopAtArg, flags end at the first argument, as "--" would: the rest is a
// command line passed on verbatim. An undefined -h or --help returns
// flag.ErrHelp. A deprecated flag name sets its new flag, with a note
// written to notes (alias.go).
func parseArgs(fs *flag.FlagSet, args []string, stopAtArg bool, notes io.Writer) ([]string, error) {
	var positional []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(positional, args[i+1:]...), nil
		}
		name, value, hasValue, ok := flagToken(arg)
		if !ok {
			if stopAtArg {
				return append(positional, args[i:]...), nil
			}
			positional = append(positional, arg)
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			if isHelp(name) {
				return nil, flag.ErrHelp
			}
			return nil, unknownFlag(arg, name, flagNames(fs))
		}
		if !isBool(f) && !hasValue {
			if i+1 == len(args) {
				kind, _ := flag.UnquoteUsage(f)
				return nil, usagef("%s needs a value: %s %s", flagName(name), flagName(name), kind)
			}
			i++
			value = args[i]
		} else if !hasValue {
			value = "true"
		}
		given := value
		name, value = resolveAlias(fs, f, value, notes)
		if err := fs.Set(name, value); err != nil {
			return nil, usagef("invalid value %q for %s: %v", given, flagName(f.Name), err)
		}
	}
	return positional, nil
}

// flagNames lists the names of the flags defined on fs, deprecated
// aliases left out (a typo is pointed at the new name).
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if aliasOf(f) == nil {
			names = append(names, f.Name)
		}
	})
	return names
}

// unknownFlag is the usage error for an undefined flag, with the closest
// defined one as a suggestion.
func unknownFlag(arg, name string, defined []string) error {
	if s := suggest(name, defined); s != "" {
		return usagef("unknown flag %s; did you mean %s?", arg, flagName(s))
	}
	return usagef("unknown flag %s", arg)
}

// groupArgs splits the words after a command group's name: the flags before
// the subcommand (given for the subcommand, which must define them), the
// subcommand's name ("" if none is given) and the words after it. A flag
// takes the next word as its value when one of the group's commands defines
// it with a value (TestFlagKindsAgree checks that none defines it as
// boolean too). help reports whether -h or --help came before the
// subcommand.
func groupArgs(c *Command, args []string) (flags []string, name string, rest []string, help bool, err error) {
	kinds := groupFlags(c)
	for i := 0; i < len(args); i++ {
		arg := args[i]
		fname, _, hasValue, ok := flagToken(arg)
		if !ok {
			if arg == "--" {
				return nil, "", nil, false, usagef("-- must come after a command: %s", strings.Join(c.commandNames(), ", "))
			}
			return flags, arg, args[i+1:], false, nil
		}
		if isHelp(fname) {
			return nil, "", args[i+1:], true, nil
		}
		takesValue, defined := kinds[fname]
		if !defined {
			names := make([]string, 0, len(kinds))
			for n := range kinds {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, "", nil, false, unknownFlag(arg, fname, names)
		}
		flags = append(flags, arg)
		if takesValue && !hasValue && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, "", nil, false, nil
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
		c.flagSet().VisitAll(func(f *flag.Flag) { kinds[f.Name] = kinds[f.Name] || !isBool(f) })
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

// suggest returns the candidate closest to word by Damerau–Levenshtein
// distance (optimal string alignment), if it is at most 2 and less than the
// longer word's length (so that "xy" does not suggest "ca"); the first
// candidate wins a tie. It returns "" when none is close.
func suggest(word string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		d := editDistance(word, c)
		if d < bestDist && d < max(len([]rune(word)), len([]rune(c))) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// the insertions, deletions, substitutions and transpositions of adjacent
// characters that turn a into b ("statsu" is 1 from "status").
func editDistance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// d[i][j] is the distance between s[:i] and t[:j].
	d := make([][]int, len(s)+1)
	for i := range d {
		d[i] = make([]int, len(t)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(s); i++ {
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(s)][len(t)]
}
