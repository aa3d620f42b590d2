package hostname

import (
	"net/netip"
	"strings"
)

// specialUse are the top-level domains that never resolve on the public
// Internet, so no public CA can validate (or will issue for) a name under
// them: RFC 2606 (test, example, invalid, localhost), RFC 6761
// (localhost), RFC 6762 (local), RFC 9476 (alt), RFC 8375 (home.arpa,
// under arpa), and internal, which ICANN reserved for private use in 2024.
var specialUse = []string{"localhost", "test", "example", "invalid", "local", "alt", "internal", "home.arpa"}

// NotPublic says why a public CA such as Let's Encrypt cannot issue a
// certificate for name (a normalised name, wildcard or IP literal), or
// returns "" when it may: a single-label name ("localhost", "intranet"),
// a name under a special-use domain ("a.test", "printer.local"), or a
// loopback, private, link-local or unspecified IP address. It looks only
// at the name: a public name the CA still refuses (a blocked domain, a
// rate limit) is for the CA to say.
//
// An internal ACME CA (step-ca, a private Boulder) may well issue for
// such names; ask this only of a public one.
func NotPublic(name string) string {
	if addr, err := netip.ParseAddr(name); err == nil {
		if addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() || addr.IsUnspecified() {
			return "a loopback, private or link-local address, which the CA cannot connect to"
		}
		return ""
	}
	name = strings.TrimPrefix(name, "*.")
	if !strings.Contains(name, ".") {
		return "a single-label name, which does not resolve on the public Internet"
	}
	for _, tld := range specialUse {
		if name == tld || strings.HasSuffix(name, "."+tld) {
			return "under ." + tld + ", a special-use domain that does not resolve on the public Internet"
		}
	}
	return ""
}
