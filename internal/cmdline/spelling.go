package cmdline

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// Users coming from certbot or lego type their flags: "-m EMAIL",
// "--server URL", "--staging", "--agree-tos". Such a spelling is accepted
// where it means what a certkeeper flag means, left out of --help and of
// did-you-mean suggestions, and answered with a one-line note naming
// certkeeper's flag, so the user learns it without a failed run.

// Spelling is another tool's spelling of a certkeeper flag.
type Spelling struct {
	// Tool names whose spelling it is: "certbot", "lego", "certbot and lego".
	Tool string
	// Name is the spelling, without dashes: "m", "server".
	Name string
	// To is the certkeeper flag it sets. Empty means the flag asks for
	// nothing certkeeper needs (--agree-tos): it takes no value and Why
	// says why it is not needed.
	To string
	// Fixed, if set, makes the spelling take no value and give To this
	// one: --staging is --ca staging.
	Fixed string
	// Convert, if set, turns a value given to the spelling into one for
	// To: --rsa-key-size 4096 is --key-type rsa4096.
	Convert func(string) string
	// Why is the note of a spelling with no To.
	Why string
	// Refuse, if set, makes the spelling a usage error that says what to
	// do instead: a mode of the other tool certkeeper does not have
	// (certbot's --nginx, which edits nginx's configuration). It takes no
	// value.
	Refuse string
}

// spellingValue is the Value of a Spelling on a FlagSet: the Value of
// its To flag, or ignored.
type spellingValue struct {
	flag.Value
	s Spelling
}

// IsBoolFlag reports whether the spelling takes no value.
func (v *spellingValue) IsBoolFlag() bool {
	b, ok := v.Value.(boolFlag)
	return v.s.To == "" || v.s.Fixed != "" || ok && b.IsBoolFlag()
}

// ignored is the Value of a spelling that sets nothing.
type ignored struct{}

func (ignored) String() string   { return "" }
func (ignored) Set(string) error { return nil }

// AddSpellings registers on fs each spelling whose To flag fs defines (or
// that sets nothing) and whose name fs does not already define.
func AddSpellings(fs *flag.FlagSet, spellings []Spelling) {
	for _, s := range spellings {
		if fs.Lookup(s.Name) != nil {
			continue
		}
		v, usage := &spellingValue{Value: ignored{}, s: s}, fmt.Sprintf("%s; not needed: %s", s.Tool, s.Why)
		if s.Refuse != "" {
			usage = fmt.Sprintf("%s; not available: %s", s.Tool, s.Refuse)
		} else if s.To != "" {
			f := fs.Lookup(s.To)
			if f == nil {
				continue
			}
			v.Value, usage = f.Value, fmt.Sprintf("%s spelling of %s", possessive(s.Tool), FlagName(s.To))
		}
		fs.Var(v, s.Name, usage)
	}
}

// SpellingOf returns the tool whose spelling f is, or "" for a flag of
// certkeeper's own or a deprecated name.
func SpellingOf(f *flag.Flag) string {
	if v, ok := f.Value.(*spellingValue); ok {
		return v.s.Tool
	}
	return ""
}

// hidden reports whether f is left out of --help and suggestions: a
// deprecated name or another tool's spelling.
func hidden(f *flag.Flag) bool {
	switch f.Value.(type) {
	case *aliasValue, *spellingValue:
		return true
	}
	return false
}

// resolveSpelling turns a spelling and its value into the certkeeper
// flag and value, writing the note to notes; set is false for a spelling
// that sets nothing.
func resolveSpelling(v *spellingValue, name, value string, notes io.Writer) (to, val string, set bool) {
	s := v.s
	if notes == nil {
		notes = io.Discard
	}
	switch {
	case s.To == "":
		fmt.Fprintf(notes, "certkeeper: %s (%s) is not needed: %s\n", FlagName(name), s.Tool, s.Why)
		return "", "", false
	case s.Fixed != "":
		fmt.Fprintf(notes, "certkeeper: %s is %s spelling of %s\n", FlagName(name), possessive(s.Tool), strings.TrimSuffix(FlagName(s.To)+" "+s.Fixed, " true"))
		return s.To, s.Fixed, true
	}
	fmt.Fprintf(notes, "certkeeper: %s is %s spelling of %s\n", FlagName(name), possessive(s.Tool), FlagName(s.To))
	if s.Convert != nil {
		value = s.Convert(value)
	}
	return s.To, value, true
}

// possessive is "certbot's" for "certbot", "certbot's and lego's" for
// "certbot and lego".
func possessive(tools string) string {
	return strings.ReplaceAll(tools, " and ", "'s and ") + "'s"
}
