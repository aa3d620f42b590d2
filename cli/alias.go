package cli

import (
	"strconv"
	"strings"
)

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
