// Package redact makes URLs safe to print. Every URL certkeeper logs or
// puts in an error — storage, ask, backend, webhook and CA URLs — goes
// through URL first, so a password in one never reaches a log, a
// terminal or a bug report.
//
// It does not validate: a URL that does not parse is redacted all the
// same, since that is when it is most likely to be printed.
package redact

import (
	"errors"
	"net/url"
	"strings"
)

// URL returns raw fit to print: its user information (user name and
// password) is replaced by "REDACTED", and its query and fragment, which
// may hold tokens (an ask URL's token, Redis's sentinel_password), are
// left out. Scheme, host, port and path stay, so the message still says
// where.
//
// The user information is taken to run to the last "@" of raw, not to the
// first "/", "?" or "#" as RFC 3986 has it: a password typed without
// percent-encoding can hold those characters, and "@" too, and must not be
// printed because a parser cut the URL short. An "@" in a path hides what
// comes before it as well, and one after a "?" or "#" leaves only the
// scheme: both err on the safe side.
//
// A string that does not start with a scheme of two or more characters
// ("redis:", "https:") is not a URL — a directory, or a Windows path such
// as C:\certkeeper — and is returned as it is.
func URL(raw string) string {
	n := schemeLen(raw)
	if n < 0 {
		return raw
	}
	scheme, rest := raw[:n], raw[n+1:]
	at, end := strings.LastIndexByte(rest, '@'), strings.IndexAny(rest, "?#")
	switch {
	case at < 0:
		if end >= 0 {
			rest = rest[:end]
		}
		return scheme + ":" + rest
	case end >= 0 && end < at:
		// Either the query or fragment holds an "@", and what follows
		// it may be a secret (sentinel_password=p@ss), or the password
		// holds a "?" or "#", and what precedes the "@" is. Show neither.
		return scheme + "://REDACTED"
	}
	rest = rest[at+1:]
	if end := strings.IndexAny(rest, "?#"); end >= 0 {
		rest = rest[:end]
	}
	return scheme + "://REDACTED@" + rest
}

// schemeLen returns the length of raw's scheme (RFC 3986 §3.1: a letter,
// then letters, digits, "+", "-" or "."), followed by ":", or -1 if raw
// has none or a one-letter one (a Windows drive).
func schemeLen(raw string) int {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case c == ':' && i >= 2:
			return i
		default:
			return -1
		}
	}
	return -1
}

// ErrUnparsable is what Error says of a URL with user information that
// does not parse.
var ErrUnparsable = errors.New(`it does not parse: percent-encode "/", "?", "#", "@" and "%" in its user name and password (as %2F, %3F, %23, %40 and %25)`)

// Error returns what may be said of err, an error of parsing or fetching
// raw (url.Parse, http.NewRequest, http.Client.Do), beside URL(raw): the
// cause a *url.Error wraps, without the URL it quotes (net/http's shows
// the user name and the query); and ErrUnparsable for a URL that does not
// parse and holds an "@", since the parser quotes the piece of raw it
// choked on, which may be a piece of the password ("invalid port
// \":s3cr\" after host"). Other errors are returned as they are.
func Error(raw string, err error) error {
	ue, ok := errors.AsType[*url.Error](err)
	if !ok {
		return err
	}
	if ue.Op == "parse" && strings.Contains(raw, "@") {
		return ErrUnparsable
	}
	return ue.Err
}
