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
// Behind NAT (a cloud VM whose public address is not on any interface)
// the interface addresses are the wrong set: set Addrs to return the
// public addresses. Which addresses count is Addrs' choice: the default
// keeps private and loopback addresses, for internal ACME CAs and tests;
// return only public ones to refuse names that a public CA could not
// reach anyway.
//
// A RequireOwnIP must not be copied or have its fields changed after
// first use. It is safe for concurrent use.
type RequireOwnIP struct {
	// Resolver looks names up. Nil means net.DefaultResolver.
	Resolver Resolver

	// Addrs returns this host's addresses. Nil means the addresses of
	// its network interfaces (net.InterfaceAddrs), without link-local
	// addresses, which need a zone that DNS cannot carry. The result is
	// kept for one minute; an error is not kept, and refuses the name.
	Addrs func() ([]netip.Addr, error)

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
		if _, ok := own[a.Unmap().WithZone("")]; !ok {
			return fmt.Errorf("%w: %s resolves to %s, not an address of this host", ErrDenied, name, a.Unmap())
		}
	}
	return nil
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
	list := interfaceAddrs
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
// without link-local, multicast and unspecified addresses: none of them
// is what a public DNS name points at.
func interfaceAddrs() ([]netip.Addr, error) {
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
		addr = addr.Unmap()
		if addr.IsLinkLocalUnicast() || addr.IsMulticast() || addr.IsUnspecified() {
			continue
		}
		out = append(out, addr)
	}
	return out, nil
}
