package cmdline

import (
	"flag"
	"fmt"
	"io"
)

// A flag renamed so that one concept has one name across commands keeps
// its old name for a release as a hidden alias: accepted on the command
// line, left out of --help (PrintFlags), and answered with a one-line
// deprecation note that names the new flag.

// aliasValue is the Value of a deprecated flag name. Parse sets the flag
// it stands for instead, so fs.Visit reports the new name and the config
// overlays need to know only that.
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

// Deprecated registers old on fs as a hidden alias of the flag to, which
// must already be defined. convert, if not nil, turns a value given to
// old into one for to.
func Deprecated(fs *flag.FlagSet, old, to string, convert func(string) string) {
	f := fs.Lookup(to)
	if f == nil {
		// A programmer error: the alias is registered before its flag.
		panic(fmt.Sprintf("flag alias --%s: no flag --%s", old, to))
	}
	fs.Var(&aliasValue{Value: f.Value, to: to, convert: convert}, old, "deprecated: use "+FlagName(to))
}

// AliasOf returns the name of the flag f is a deprecated alias of, or ""
// if it is a flag of its own.
func AliasOf(f *flag.Flag) string {
	if a, ok := f.Value.(*aliasValue); ok {
		return a.to
	}
	return ""
}

// resolveAlias turns a deprecated flag name and its value into the new
// ones, writing the deprecation note to notes. A flag of its own is
// returned as it is.
func resolveAlias(f *flag.Flag, value string, notes io.Writer) (string, string) {
	a, ok := f.Value.(*aliasValue)
	if !ok {
		return f.Name, value
	}
	if notes != nil {
		fmt.Fprintf(notes, "certkeeper: %s is deprecated and will be removed; use %s\n", FlagName(f.Name), FlagName(a.to))
	}
	if a.convert != nil {
		value = a.convert(value)
	}
	return a.to, value
}
