package policy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ownAddrsTTL is how long RequireOwnIP keeps this host's addresses before
// asking for them again: addresses change rarely (DHCP, a cloud floating
// IP moved), and listing them is a system call per refresh, not per name.
const ownAddrsTTL = time.Minute

// Resolver looks up the addresses of a host name. *net.Resolver
// implements it; network is "ip", "ip4" or "ip6" as for
// net.Resolver.LookupNetIP.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// RequireOwnIP is a Policy that allows a name only if every address it
// resolves to (A and AAAA) is one of this host's own: the rule of
// rekby/lets-proxy, for a server that will answer on-demand for any name
// pointed at it. Every address, not one: the CA validates from outside
// against the name's addresses (Let's Encrypt prefers IPv6), so a name
// with one address elsewhere would fail validation at random, and a name
// that points partly elsewhere is not this host's to serve. A name that
// resolves to nothing, or fails to resolve, is refused.
//
// Refusals wrap ErrDenied and name the first foreign address. If ctx ends
// during the lookup, the error wraps the lookup's error without ErrDenied.
//
// A name resolving to a loopback, link-local, private (RFC 1918, RFC 4193
// fc00::/7), shared (RFC 6598 100.64.0.0/10) or unspecified address is
// refused unless AllowPrivate is set, even if the address is this host's:
// a public CA validates from the internet, where such an address leads
// nowhere, so the order would fail at the CA and spend the account's
// failed-validation budget ("localhost" and any name an attacker points
// at 127.0.0.1 would otherwise pass).
//
// Behind NAT (a cloud VM whose public address is not on any interface)
// the interface addresses are the wrong set: set Addrs to return the
// public addresses.
//
// A RequireOwnIP must not be copied or have its fields changed after
// first use. It is safe for concurrent use.
type RequireOwnIP struct {
	// Resolver looks names up. Nil means net.DefaultResolver.
	Resolver Resolver

	// Addrs returns this host's addresses. Nil means the addresses of
	// its network interfaces (net.InterfaceAddrs), without multicast and
	// unspecified ones, and with link-local ones only when AllowPrivate
	// is set (their zone dropped: DNS cannot carry one). The result is
	// kept for one minute; an error is not kept, and refuses the name.
	Addrs func() ([]netip.Addr, error)

	// AllowPrivate lets loopback, link-local, private and shared
	// addresses count as this host's own when they are among Addrs: for
	// an internal ACME CA that validates on a private network, and for
	// tests on loopback. False (the zero value) refuses any name that
	// resolves to one. The certkeeper command sets it with
	// --own-ip-private (config key own_ip_private).
	AllowPrivate bool

	mu    sync.Mutex              // guards own and ownAt
	own   map[netip.Addr]struct{} // replaced, never modified: read without mu
	ownAt time.Time
}

// Decide resolves name and allows it if all its addresses are this host's.
func (r *RequireOwnIP) Decide(ctx context.Context, name string) error {
	addrs, err := r.resolver().LookupNetIP(ctx, "ip", name)
	if err != nil {
		if ctx.Err() != nil {
			// The handshake went away: that says nothing about name.
			return fmt.Errorf("resolving %s: %w", name, err)
		}
		return fmt.Errorf("%w: %s: resolving: %w", ErrDenied, name, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %s resolves to no address", ErrDenied, name)
	}
	own, err := r.ownAddrs(time.Now())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDenied, name, err)
	}
	for _, a := range addrs {
		// A resolver may return an A record as ::ffff:a.b.c.d.
		a = a.Unmap().WithZone("")
		if !r.AllowPrivate && localOnly(a) {
			return fmt.Errorf("%w: %s resolves to %s, a loopback, link-local or private address that a public CA cannot reach (%w: for an internal CA, set AllowPrivate)",
				ErrDenied, name, a, ErrPrivateAddress)
		}
		if _, ok := own[a]; !ok {
			return fmt.Errorf("%w: %s resolves to %s, not an address of this host", ErrDenied, name, a)
		}
	}
	return nil
}

// sharedSpace is RFC 6598's shared address space (carrier-grade NAT, and
// overlay networks such as Tailscale): not reachable from the internet.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// localOnly reports whether a (unmapped) is an address no public CA can
// reach this host at: loopback, link-local, private, shared or
// unspecified (0.0.0.0 and :: reach the local host on Linux).
func localOnly(a netip.Addr) bool {
	return a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsPrivate() || a.IsUnspecified() || sharedSpace.Contains(a)
}

// ownAddrs returns this host's addresses, refreshed after ownAddrsTTL.
// The mutex is held during the refresh so that concurrent first
// handshakes list the interfaces once.
func (r *RequireOwnIP) ownAddrs(now time.Time) (map[netip.Addr]struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.own != nil && now.Sub(r.ownAt) < ownAddrsTTL {
		return r.own, nil
	}
	list := func() ([]netip.Addr, error) { return interfaceAddrs(r.AllowPrivate) }
	if r.Addrs != nil {
		list = r.Addrs
	}
	addrs, err := list()
	if err != nil {
		return nil, fmt.Errorf("listing this host's addresses: %w", err)
	}
	own := make(map[netip.Addr]struct{}, len(addrs))
	for _, a := range addrs {
		own[a.Unmap().WithZone("")] = struct{}{}
	}
	r.own, r.ownAt = own, now
	return own, nil
}

func (r *RequireOwnIP) resolver() Resolver {
	if r.Resolver != nil {
		return r.Resolver
	}
	return net.DefaultResolver
}

// interfaceAddrs returns the addresses of the host's network interfaces,
// without multicast and unspecified addresses, and without link-local ones
// unless linkLocal (with their zone dropped): none of them is what a
// public DNS name points at.
func interfaceAddrs(linkLocal bool) ([]netip.Addr, error) {
	as, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("interface addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(as))
	for _, a := range as {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		default:
			continue
		}
		addr, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		addr = addr.Unmap().WithZone("")
		if addr.IsLinkLocalUnicast() && !linkLocal || addr.IsMulticast() || addr.IsUnspecified() {
			continue
		}
		out = append(out, addr)
	}
	return out, nil
}
