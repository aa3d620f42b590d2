package cmdline

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// EnvName is the environment variable FromEnv reads for the flag name
// with prefix: --max-conns is CERTKEEPER_MAX_CONNS for "CERTKEEPER_".
func EnvName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(name))
}

// Repeatable is a flag value each use of which adds a value (--allow A
// --allow B): FromEnv gives it each word of its variable.
type Repeatable interface {
	flag.Value
	Repeatable() bool
}

// Repeatable reports that each use adds a value.
func (s *Strings) Repeatable() bool { return true }

// Repeatable reports that each use adds names.
func (n *Names) Repeatable() bool { return true }

// Repeatable reports whether each use adds a value (Repeat).
func (v *List) Repeatable() bool { return v.Repeat }

// FromEnv sets each flag of fs that the command line did not give from
// its environment variable (EnvName: prefix and the flag's name), when
// lookup finds that set and not empty: a container's settings, which its
// commands run with docker exec see too. The command line wins over the
// environment; a command that reads a config file takes the flags set
// here as given, so the environment wins over the file. A repeatable
// flag takes each word of its variable ("a.example *.a.example"), a
// boolean true, 1, false or 0.
//
// One-letter flags, deprecated names and other tools' spellings have no
// variable, nor has a flag whose variable is in reserved: those the
// program sets itself for the commands it runs (a deploy hook's
// CERTKEEPER_CERT_FILE must not become --cert-file of a certkeeper
// command the hook runs). It returns the variables used, by flag name.
func FromEnv(fs *flag.FlagSet, prefix string, lookup func(string) (string, bool), reserved []string) (map[string]string, error) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	used := map[string]string{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := EnvName(prefix, f.Name)
		if err != nil || given[f.Name] || len(f.Name) == 1 || hidden(f) || slices.Contains(reserved, name) {
			return
		}
		v, ok := lookup(name)
		if v = strings.TrimSpace(v); !ok || v == "" {
			return
		}
		values := []string{v}
		if r, ok := f.Value.(Repeatable); ok && r.Repeatable() {
			values = strings.Fields(v)
		}
		for _, one := range values {
			if serr := fs.Set(f.Name, one); serr != nil {
				err = fmt.Errorf("$%s: invalid value %q for %s: %v", name, one, FlagName(f.Name), serr)
				return
			}
		}
		used[f.Name] = name
	})
	return used, err
}
