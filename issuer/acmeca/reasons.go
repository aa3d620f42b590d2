package acmeca

import (
	"slices"
	"strconv"
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

// RevocationReason returns the RFC 5280 reason code that reason names,
// for Revoke, with its name as the RFC spells it ("keyCompromise"), and
// whether it is one a subscriber may give. reason is a name in any case,
// with or without '-', '_' or spaces between its words (certbot's --reason
// keycompromise, "key-compromise"), or the code itself (lego's --reason 1).
func RevocationReason(reason string) (code int, name string, ok bool) {
	n, err := strconv.Atoi(reason)
	joined := strings.NewReplacer("-", "", "_", "", " ", "").Replace(reason)
	for name, code := range revocationReasons {
		if strings.EqualFold(name, joined) || err == nil && n == code {
			return code, name, true
		}
	}
	return 0, "", false
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
