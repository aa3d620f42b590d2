// Package loopback decides what belongs to this host alone, for the
// listeners that serve without a credential: the status page and metrics
// without a token, and the certificate server with --no-auth. Two checks
// keep them to this host's own processes:
//
//   - the address a listener is bound to (Addr) must be a loopback one.
//     It is checked on the socket itself, not only on the flag: a socket
//     handed over by systemd (socket activation) may be bound elsewhere
//     than the flag says;
//   - a request's Host must name a loopback host (Host, Guard). A web
//     page the operator's browser opens can make the browser ask a
//     loopback listener through a name of its own that resolves to
//     127.0.0.1 (DNS rebinding), and read the answer as its own: private
//     keys, every managed name. Such a request carries the page's name in
//     Host, which no local client sends.
package loopback

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Addr reports whether addr (host:port) listens on loopback only:
// localhost or a loopback IP address. An empty host (":9100") listens
// everywhere.
func Addr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && host != "" && Host(host)
}

// Host reports whether an HTTP request's Host header (with or without its
// port, an IPv6 address in brackets) names a loopback host: localhost or a
// loopback IP address.
func Host(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Request reports whether r came to this host alone: its Host names a
// loopback host, and it came in on a loopback address (when the server
// says which: http.LocalAddrContextKey).
func Request(r *http.Request) bool {
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && !Addr(la.String()) {
		return false
	}
	return Host(r.Host)
}

// Guard wraps h: a request that did not come to this host alone (Request)
// gets 421 Misdirected Request, with hint (what to do instead) in its body.
func Guard(h http.Handler, hint string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Request(r) {
			Refuse(w, hint)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Refuse answers 421 Misdirected Request to a request for a host that is
// not loopback, on a listener that serves loopback alone; hint says what
// to do instead.
func Refuse(w http.ResponseWriter, hint string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusMisdirectedRequest)
	_, _ = w.Write([]byte("this listener has no credential, so it answers only requests for 127.0.0.1, [::1] or localhost (a web page could make a browser send others: DNS rebinding); " + hint + "\n"))
}
