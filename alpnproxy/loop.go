package alpnproxy

import (
	"net"
	"net/netip"
	"strings"
)

// Loops reports whether target (an ALPNAddr or FallbackAddr) is the
// proxy's own listen address: the same port, on a loopback address or
// "localhost", or on the very host listen names. Each connection sent
// there would come back to the proxy, which would send it there again,
// until MaxConns. A target on another host with the same port (the web
// server behind a proxy on :443) does not loop. Addresses that do not
// parse as host:port do not loop either; their own checks refuse them.
func Loops(listen, target string) bool {
	lhost, lport, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	thost, tport, err := net.SplitHostPort(target)
	if err != nil || tport != lport {
		return false
	}
	if strings.EqualFold(thost, lhost) {
		return true
	}
	tip, err := netip.ParseAddr(thost)
	local := strings.EqualFold(thost, "localhost") || (err == nil && (tip.Unmap().IsLoopback() || tip.IsUnspecified()))
	if !local {
		return false
	}
	// A loopback target reaches a listener on all addresses, or on
	// loopback.
	lip, err := netip.ParseAddr(lhost)
	return lhost == "" || strings.EqualFold(lhost, "localhost") || (err == nil && (lip.IsUnspecified() || lip.Unmap().IsLoopback()))
}
