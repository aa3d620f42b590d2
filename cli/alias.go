package cli

import (
	"flag"
	"strconv"
	"strings"

	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// A flag renamed so that one concept has one name across commands keeps
// its old name for a release as a hidden alias: accepted on the command
// line (and, for proxy and server, as the old config key), left out of
// --help, and answered with a one-line deprecation note on stderr that
// names the new flag. docs/cli.md lists each alias beside its flag.

// deprecatedFlag registers old on fs as a hidden alias of the flag to,
// which must already be defined (cmdline.Deprecated).
func deprecatedFlag(fs *flag.FlagSet, old, to string) {
	cmdline.Deprecated(fs, old, to, nil)
}

// deprecatedFlagFunc is deprecatedFlag for an old flag whose values need
// convert to become the new flag's.
func deprecatedFlagFunc(fs *flag.FlagSet, old, to string, convert func(string) string) {
	cmdline.Deprecated(fs, old, to, convert)
}

// daysToDuration converts a --days value (a whole number of days) to a
// duration in days; anything else is left for the duration flag to refuse.
func daysToDuration(v string) string {
	if _, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		return strings.TrimSpace(v) + "d"
	}
	return v
}

// configNotes is what a config struct that takes deprecated keys offers
// readConfigFile: it keeps the deprecation notes until the command can
// print them (engineConfig.printNotes).
type configNotes interface {
	addNote(note string)
}
