// Package cmdline is the certkeeper command's argument machinery, apart
// from its command table: flags after arguments, "--", did-you-mean
// suggestions for a mistyped name, deprecated flag names kept as hidden
// aliases, and --help with the flags grouped by topic.
//
// It exists because flag.FlagSet.Parse stops at the first argument: users
// coming from certbot, lego or GNU tools write
// "import --from certbot DIR --storage S" and
// "alpn-proxy --fallback ADDR start", and expect both to work. The
// FlagSet still defines the flags, their kinds and their values; only the
// order in which they may appear differs.
//
// It does not know certkeeper's commands, flags or exit statuses: package
// cli declares those and decides what an error here means. Its errors are
// usage errors, worded for the command line.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// boolFlag is the flag package's optional interface of flags that take no
// value ("--iptables", "--iptables=false").
type boolFlag interface {
	flag.Value
	IsBoolFlag() bool
}

// IsBool reports whether f takes no value (a boolean flag).
func IsBool(f *flag.Flag) bool {
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

// FlagName is how help writes a flag: -d, --storage.
func FlagName(name string) string {
	if len([]rune(name)) == 1 {
		return "-" + name
	}
	return "--" + name
}

// isHelp reports whether a flag name asks for help.
func isHelp(name string) bool { return name == "h" || name == "help" }

// Parse sets the flags in args on fs and returns the other words, the
// arguments, in order. Flags may come before, between and after arguments;
// "--" ends them, and every word after it is an argument. A flag that takes
// a value takes the next word whatever it looks like ("--post-hook
// 'systemctl reload nginx'", "--rulespec -p"), as the flag package does,
// except a "--" word that names a flag of fs: "--allow --storage S" is a
// forgotten value, refused ("--allow=--storage" gives it), and another
// tool's spelling of the same flag, which takes the value instead
// (certbot's "--webroot -w DIR"; AddSpellings); a boolean flag
// never does ("--iptables=false" sets it false). With
// stopAtArg, flags end at the first argument, as "--" would: the rest is a
// command line passed on verbatim. An undefined -h or --help returns
// flag.ErrHelp. A deprecated flag name sets its new flag, with a note
// written to notes (Deprecated).
func Parse(fs *flag.FlagSet, args []string, stopAtArg bool, notes io.Writer) ([]string, error) {
	var positional []string
	once := map[string]string{} // the value each single-valued flag was given
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
		if v, ok := f.Value.(*spellingValue); ok && v.s.Refuse != "" {
			return nil, fmt.Errorf("%s (%s): %s", FlagName(name), v.s.Tool, v.s.Refuse)
		}
		if !IsBool(f) && !hasValue {
			if i+1 == len(args) {
				kind, _ := flag.UnquoteUsage(f)
				return nil, fmt.Errorf("%s needs a value: %s %s", FlagName(name), FlagName(name), kind)
			}
			next, _, _, isFlag := flagToken(args[i+1])
			if isFlag && spells(fs.Lookup(next), f.Name) {
				continue // certbot's "--webroot -w DIR": the next word gives the value
			}
			if isFlag && strings.HasPrefix(args[i+1], "--") && fs.Lookup(next) != nil {
				kind, _ := flag.UnquoteUsage(f)
				return nil, fmt.Errorf("%s needs a value: %s %s (%s is a flag; to give it as the value, write %s=%s)",
					FlagName(name), FlagName(name), kind, args[i+1], FlagName(name), args[i+1])
			}
			i++
			value = args[i]
		} else if !hasValue {
			value = "true"
		}
		given := value
		if v, ok := f.Value.(*spellingValue); ok {
			// Not checked by checkOnce: another tool's pair of flags may
			// give one of ours twice (certbot's --key-type ecdsa
			// --elliptic-curve secp384r1).
			var set bool
			if name, value, set = resolveSpelling(v, name, value, notes); !set {
				continue
			}
		} else {
			name, value = resolveAlias(f, value, notes)
			if err := checkOnce(fs.Lookup(name), value, once); err != nil {
				return nil, err
			}
		}
		if err := fs.Set(name, value); err != nil {
			return nil, fmt.Errorf("invalid value %q for %s: %v", given, FlagName(f.Name), err)
		}
	}
	return positional, nil
}

// checkOnce refuses a flag that takes one value given a second, different
// one (under any of its names): the flag package keeps the last, and a
// trial's "cert renew --out-dir A --out-dir B" renewed B alone, in
// silence, where -d and --allow, which are repeatable, taught it to
// repeat. The same value again, and a boolean, pass.
func checkOnce(f *flag.Flag, value string, once map[string]string) error {
	if f == nil || IsBool(f) || repeatable(f.Value) {
		return nil
	}
	if prev, ok := once[f.Name]; ok && prev != value {
		return fmt.Errorf("%s given twice (%q, then %q): it takes one value; give it once", FlagName(f.Name), prev, value)
	}
	once[f.Name] = value
	return nil
}

// repeatable reports whether each use of a flag of value v adds a value.
func repeatable(v flag.Value) bool {
	switch v := v.(type) {
	case *Strings, *Names, *Settings:
		return true
	case *List:
		return v.Repeat
	}
	return false
}

// spells reports whether f is another tool's spelling of the flag named
// to.
func spells(f *flag.Flag, to string) bool {
	if f == nil {
		return false
	}
	v, ok := f.Value.(*spellingValue)
	return ok && v.s.To == to
}

// flagNames lists the names of the flags defined on fs, deprecated
// aliases and other tools' spellings left out (a typo is pointed at
// certkeeper's name).
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if !hidden(f) {
			names = append(names, f.Name)
		}
	})
	return names
}

// unknownFlag is the usage error for an undefined flag, with the closest
// defined one as a suggestion.
func unknownFlag(arg, name string, defined []string) error {
	if s := Suggest(name, defined); s != "" {
		return fmt.Errorf("unknown flag %s; did you mean %s?", arg, FlagName(s))
	}
	return fmt.Errorf("unknown flag %s", arg)
}

// Group splits the words after a command group's name: the flags before
// the subcommand (given for the subcommand, which must define them), the
// subcommand's name ("" if none is given) and the words after it. kinds
// maps the name of every flag a command of the group defines to whether
// it takes a value: such a flag takes the next word as its value (the
// caller checks that no command of the group defines it as boolean too).
// commands are the group's command names, for the error of a "--" before
// any. help reports whether -h or --help came before the subcommand.
func Group(kinds map[string]bool, commands []string, args []string) (flags []string, name string, rest []string, help bool, err error) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		fname, _, hasValue, ok := flagToken(arg)
		if !ok {
			if arg == "--" {
				return nil, "", nil, false, errors.New("-- must come after a command: " + strings.Join(commands, ", "))
			}
			return flags, arg, args[i+1:], false, nil
		}
		if isHelp(fname) {
			return nil, "", args[i+1:], true, nil
		}
		takesValue, defined := kinds[fname]
		if !defined {
			return nil, "", nil, false, unknownFlag(arg, fname, sortedKeys(kinds))
		}
		flags = append(flags, arg)
		if takesValue && !hasValue && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return flags, "", nil, false, nil
}

// Given reports whether the flag name was given on fs's command line.
func Given(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}
