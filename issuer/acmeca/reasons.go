package acmeca

import (
	"slices"
	"strings"
)

// revocationReasons are the RFC 5280 §5.3.1 reason codes an ACME
// subscriber may give when revoking (RFC 8555 §7.6), by their RFC names.
// The others (cACompromise, certificateHold, removeFromCRL,
// privilegeWithdrawn, aACompromise) are for a CA to use.
var revocationReasons = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
}

// RevocationReason returns the RFC 5280 reason code named name (as the
// RFC spells it: "keyCompromise"), for Revoke, and whether name is one a
// subscriber may give.
func RevocationReason(name string) (int, bool) {
	code, ok := revocationReasons[name]
	return code, ok
}

// RevocationReasons lists, sorted, the names RevocationReason accepts,
// separated by ", ".
func RevocationReasons() string {
	var names []string
	for n := range revocationReasons {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
