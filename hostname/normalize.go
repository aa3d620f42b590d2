package hostname

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalidName is matched by every *NameError: errors.Is(err,
// ErrInvalidName) reports whether a name was refused for its syntax rather
// than by a policy decision (ErrDenied).
var ErrInvalidName = errors.New("invalid name")

// NameError reports a name that is not a valid certificate identifier.
type NameError struct {
	// Name is the name as it was given, before normalisation.
	Name string
	// Reason says what is wrong with it ("empty label", ...).
	Reason string
}

// Error returns `invalid name "a..b": empty label`. A name longer than 256
// bytes is shortened, so a hostile input cannot flood a log line.
func (e *NameError) Error() string {
	name := e.Name
	if len(name) > 256 {
		name = name[:64] + "..."
	}
	return fmt.Sprintf("invalid name %q: %s", name, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidName) true for every *NameError.
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

const (
	// maxNameLen is the longest name in presentation form without the
	// trailing dot (RFC 1035 §2.3.4: 255 octets on the wire).
	maxNameLen = 253
	// maxLabelLen is the longest label (RFC 1035 §2.3.4).
	maxLabelLen = 63
	// maxInputLen bounds the input before any Unicode work, so the cost
	// of refusing a hostile name is bounded. Four bytes per rune of a
	// 253-byte name is 1012; nothing valid comes near 1024 bytes.
	maxInputLen = 1024
)

// lookup is the IDNA profile of RFC 5891 §5 (UTS #46 mapping, STD3 ASCII
// rules, hyphen and joiner checks, the Bidi rule of RFC 5893),
// non-transitional so "ß" stays "ß" (as browsers do since 2017) rather than
// turning into "ss". Profiles are immutable and safe for concurrent use.
var lookup = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
)

// Normalizer turns names into the one form certkeeper stores, compares
// and sends to CAs, and refuses anything that is not a valid identifier.
// The zero value accepts DNS names only; Normalize uses it.
//
// A Normalizer holds no state and is safe for concurrent use.
type Normalizer struct {
	// AllowIP accepts IPv4 and IPv6 literals, for issuers that issue IP
	// certificates (localca, selfsigned, ACME CAs with RFC 8738). Zero:
	// IP literals are refused, as SNI never carries them (RFC 6066 §3).
	AllowIP bool
	// AllowWildcard accepts a "*" as the whole leftmost label, for names
	// configured by an operator. Zero: refused, as SNI never carries
	// them.
	AllowWildcard bool
}

// Normalize is Normalizer{}.Normalize: DNS names only, no IP literals, no
// wildcards. It is what a ClientHello's server name goes through.
func Normalize(name string) (string, error) {
	return Normalizer{}.Normalize(name)
}

// Normalize returns the canonical form of name or a *NameError.
//
// DNS names are lower-cased and converted to punycode with the IDNA lookup
// profile (RFC 5891 §5, UTS #46 non-transitional): "ÜNÏ.test" becomes
// "xn--n-nga1b.test". One trailing dot is dropped. The result is at most
// 253 bytes; each label is 1 to 63 bytes of [a-z0-9-], neither starting nor
// ending with "-", and not of the reserved form "??--" unless it is a valid
// "xn--" A-label (RFC 5890 §2.3.1). Underscores are refused: CAs do not
// issue for them. A single label ("localhost") is accepted; a name whose
// last label is numeric ("127.1", "1.2.3.4.5", "0x7f") is refused, because
// resolvers and URL parsers read it as an IPv4 address (WHATWG URL "ends in
// a number"). No Public Suffix List check is made: "*.test" is valid.
//
// White space and control characters anywhere are an error, not something
// to trim: a name that needs cleaning did not come from a well-behaved
// client.
//
// With AllowWildcard, "*." may start the name ("*.a.test"); "*" anywhere
// else ("*.*.a.test", "a.*.test", "*a.test") is refused. With AllowIP,
// IP literals are returned in canonical form (netip.Addr.String, IPv4-mapped
// IPv6 unmapped: "::ffff:10.0.0.1" becomes "10.0.0.1"); zones ("fe80::1%eth0")
// and brackets are refused.
//
// Normalize is idempotent: a result normalises to itself.
func (n Normalizer) Normalize(name string) (string, error) {
	s, reason := n.normalize(name)
	if reason != "" {
		return "", &NameError{Name: name, Reason: reason}
	}
	return s, nil
}

// normalize returns the normalised name, or "" and the reason it is
// invalid. Reasons are built only on the error path.
func (n Normalizer) normalize(name string) (string, string) {
	switch {
	case name == "":
		return "", "empty name"
	case len(name) > maxInputLen:
		return "", fmt.Sprintf("%d bytes, more than %d", len(name), maxInputLen)
	}
	if reason := checkRunes(name); reason != "" {
		return "", reason
	}
	if maybeIP(name) {
		if addr, err := netip.ParseAddr(name); err == nil {
			return n.ip(addr)
		}
	}

	s := strings.TrimSuffix(name, ".")
	prefix := ""
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		if !n.AllowWildcard {
			return "", "wildcard not allowed"
		}
		prefix, s = "*.", rest
	}
	if strings.Contains(s, "*") {
		if !n.AllowWildcard {
			return "", "wildcard not allowed"
		}
		if s == "*" {
			return "", `a wildcard needs the zone it covers, e.g. "*.a.example"`
		}
		return "", `"*" is only allowed as the whole leftmost label`
	}
	if s == "" {
		return "", "empty label"
	}
	a, reason := toASCII(s)
	if reason != "" {
		return "", reason
	}
	if len(prefix)+len(a) > maxNameLen {
		return "", fmt.Sprintf("%d bytes, more than %d", len(prefix)+len(a), maxNameLen)
	}
	if reason := checkLabels(a); reason != "" {
		return "", reason
	}
	if prefix == "" {
		return a, ""
	}
	return prefix + a, ""
}

// ip applies the IP literal rules.
func (n Normalizer) ip(addr netip.Addr) (string, string) {
	if addr.Zone() != "" {
		return "", "IP address with a zone"
	}
	if !n.AllowIP {
		return "", "IP address not allowed"
	}
	return addr.Unmap().String(), ""
}

// checkRunes refuses invalid UTF-8, white space and control characters
// anywhere in name.
func checkRunes(name string) string {
	for i, r := range name {
		switch {
		case r == utf8.RuneError:
			if _, size := utf8.DecodeRuneInString(name[i:]); size == 1 {
				return fmt.Sprintf("invalid UTF-8 at byte %d", i)
			}
		case unicode.IsSpace(r):
			return fmt.Sprintf("white space %U at byte %d", r, i)
		case unicode.IsControl(r):
			return fmt.Sprintf("control character %U at byte %d", r, i)
		}
	}
	return ""
}

// toASCII lower-cases an ASCII name, or converts a name with non-ASCII
// runes or "xn--" labels with the IDNA lookup profile. The ASCII path
// avoids the IDNA tables for the common case and allocates nothing when
// the name is already lower case; "xn--" labels go through IDNA so that
// their punycode is decoded, validated and re-encoded canonically.
func toASCII(s string) (string, string) {
	if isASCII(s) && !hasACELabel(s) {
		return strings.ToLower(s), ""
	}
	a, err := lookup.ToASCII(s)
	if err != nil {
		return "", "IDNA: " + strings.TrimPrefix(err.Error(), "idna: ")
	}
	return a, ""
}

// checkLabels checks the label rules on an ASCII, lower-case name without
// its wildcard prefix.
func checkLabels(a string) string {
	last := ""
	for label := range strings.SplitSeq(a, ".") {
		if reason := checkLabel(label); reason != "" {
			return reason
		}
		last = label
	}
	if endsInNumber(last) {
		return fmt.Sprintf("last label %q is numeric (read as an IPv4 address)", last)
	}
	return ""
}

func checkLabel(label string) string {
	switch {
	case label == "":
		return "empty label"
	case len(label) > maxLabelLen:
		return fmt.Sprintf("label of %d bytes, more than %d", len(label), maxLabelLen)
	case label[0] == '-' || label[len(label)-1] == '-':
		return fmt.Sprintf("label %q starts or ends with a hyphen", label)
	case len(label) >= 4 && label[2:4] == "--" && !strings.HasPrefix(label, "xn--"):
		return fmt.Sprintf("label %q has the reserved form \"??--\"", label)
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Sprintf("label %q contains %q", label, c)
		}
	}
	return ""
}

// endsInNumber reports whether label is all decimal digits or "0x"
// followed by hex digits: the WHATWG URL standard's "ends in a number"
// test, which makes a host an IPv4 address.
func endsInNumber(label string) bool {
	if label == "" {
		return false
	}
	if hex, ok := strings.CutPrefix(label, "0x"); ok {
		for i := 0; i < len(hex); i++ {
			if c := hex[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(label); i++ {
		if c := label[i]; c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// maybeIP reports whether name could be an IP literal: it has a ":" or is
// made of digits and dots. It spares DNS names the allocation of a
// netip.ParseAddr error.
func maybeIP(name string) bool {
	if strings.IndexByte(name, ':') >= 0 {
		return true
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hasACELabel reports whether a label of s starts with "xn--" in any case.
func hasACELabel(s string) bool {
	for label := range strings.SplitSeq(s, ".") {
		if len(label) >= 4 && strings.EqualFold(label[:4], "xn--") {
			return true
		}
	}
	return false
}
