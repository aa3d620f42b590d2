package cli

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// A flag renamed so that one concept has one name across commands keeps
// its old name for a release as a hidden alias: accepted on the command
// line (and, for proxy and server, as the old config key), left out of
// --help, and answered with a one-line deprecation note on stderr that
// names the new flag. docs/cli.md lists each alias beside its flag.

// aliasValue is the Value of a deprecated flag name. parseArgs sets the
// flag it stands for instead, so fs.Visit reports the new name and the
// config overlays need to know only that.
type aliasValue struct {
	flag.Value // the new flag's Value
	// to is the new flag's name.
	to string
	// convert turns a value given to the old name into one for the new
	// (--days 30 is --valid-for 30d); nil keeps it.
	convert func(string) string
}

// IsBoolFlag reports whether the new flag is boolean, so that the old
// name takes no value either.
func (a *aliasValue) IsBoolFlag() bool {
	b, ok := a.Value.(boolFlag)
	return ok && b.IsBoolFlag()
}

// deprecatedFlag registers old on fs as a hidden alias of the flag to,
// which must already be defined.
func deprecatedFlag(fs *flag.FlagSet, old, to string) {
	deprecatedFlagFunc(fs, old, to, nil)
}

// deprecatedFlagFunc is deprecatedFlag for an old flag whose values need
// convert to become the new flag's.
func deprecatedFlagFunc(fs *flag.FlagSet, old, to string, convert func(string) string) {
	f := fs.Lookup(to)
	if f == nil {
		// A programmer error: the alias is registered before its flag.
		panic(fmt.Sprintf("flag alias --%s: no flag --%s", old, to))
	}
	fs.Var(&aliasValue{Value: f.Value, to: to, convert: convert}, old, "deprecated: use "+flagName(to))
}

// aliasOf returns what f is an alias of, or nil if it is a flag of its own.
func aliasOf(f *flag.Flag) *aliasValue {
	a, _ := f.Value.(*aliasValue)
	return a
}

// resolveAlias turns a deprecated flag name and its value into the new
// ones, writing the deprecation note to notes. A flag of its own is
// returned as it is.
func resolveAlias(fs *flag.FlagSet, f *flag.Flag, value string, notes io.Writer) (string, string) {
	a := aliasOf(f)
	if a == nil {
		return f.Name, value
	}
	if notes != nil {
		fmt.Fprintf(notes, "certkeeper: %s is deprecated and will be removed; use %s\n", flagName(f.Name), flagName(a.to))
	}
	if a.convert != nil {
		value = a.convert(value)
	}
	return a.to, value
}

// daysToDuration converts a --days value (a whole number of days) to a
// duration in days; anything else is left for the duration flag to refuse.
func daysToDuration(v string) string {
	if _, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return strings.TrimSpace(v) + "d"
	}
	return v
}

// yamlAliases maps the deprecated config keys of struct type t (a field's
// `alias:"old_key"` tag) to their new keys, following ",inline" fields.
func yamlAliases(t reflect.Type) map[string]string {
	aliases := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" {
			for old, to := range yamlAliases(f.Type) {
				aliases[old] = to
			}
			continue
		}
		if old := f.Tag.Get("alias"); old != "" && name != "" {
			aliases[old] = name
		}
	}
	return aliases
}

// configNotes is what a config struct that takes deprecated keys offers
// readConfigFile: it keeps the deprecation notes until the command can
// print them (engineConfig.printNotes).
type configNotes interface {
	addNote(note string)
}
