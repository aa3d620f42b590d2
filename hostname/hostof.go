package hostname

import (
	"net"
	"net/url"
	"strings"
)

// HostOf returns the host of s when s is a URL ("https://a.example/path")
// or HOST:PORT ("a.example:443", "[2001:db8::1]:443") whose host is a
// valid name, wildcard or IP literal, as one pastes from a browser or a
// backend's address; else "". A caller that refuses s where a name alone
// is wanted suggests it: "give the host name alone: a.example".
func HostOf(s string) string {
	host := ""
	if strings.Contains(s, "://") {
		if u, err := url.Parse(s); err == nil {
			host = u.Hostname()
		}
	} else if h, port, err := net.SplitHostPort(s); err == nil && port != "" {
		host = h
	}
	if _, err := (Normalizer{AllowIP: true, AllowWildcard: true}).Normalize(host); host == "" || err != nil {
		return ""
	}
	return host
}

// WithHostHint returns err, Normalize's error for s, as a *NameError that
// says "give the host name alone: HOST" when s is a URL or HOST:PORT
// (HostOf); any other err as it is.
func WithHostHint(s string, err error) error {
	if host := HostOf(s); err != nil && host != "" {
		return &NameError{Name: s, Reason: "give the host name alone: " + host}
	}
	return err
}
