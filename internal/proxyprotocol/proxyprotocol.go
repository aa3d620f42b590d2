// Package proxyprotocol reads the PROXY protocol header (v1 or v2) that a
// TCP load balancer in front of a listener (HAProxy, AWS NLB, nginx's
// stream proxy_protocol) puts before each connection's bytes, so that the
// connection's RemoteAddr is the client's address, not the balancer's:
// what X-Forwarded-For, the per-client issuance limit and the logs need.
//
// Only connections from the trusted sources carry a header, and they must:
// a header from anyone else would let that client claim any address, so
// their connections are left as they are (a header they send is then just
// bytes the TLS or HTTP server refuses). The parsing is
// github.com/pires/go-proxyproto's.
package proxyprotocol

import (
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// HeaderTimeout bounds how long a trusted source may take to send the
// header; a balancer sends it at once.
const HeaderTimeout = 5 * time.Second

// Listen wraps ln: a connection from an address in trusted must start
// with a PROXY header, whose source address becomes its RemoteAddr; any
// other connection is returned as ln accepted it. With no trusted
// prefixes, ln itself is returned.
func Listen(ln net.Listener, trusted []netip.Prefix) net.Listener {
	if len(trusted) == 0 {
		return ln
	}
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: HeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if Trusted(o.Upstream, trusted) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.SKIP, nil
		},
	}
}

// Trusted reports whether a, a TCP address, is in one of the prefixes.
func Trusted(a net.Addr, prefixes []netip.Prefix) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParsePrefix parses a trusted source: a CIDR prefix (10.0.0.0/8,
// fd00::/8) or a single address (10.0.0.5, meaning /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
