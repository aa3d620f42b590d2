package policy

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// IPLimiter defaults; each is explained on its field.
const (
	defaultIPRate       = rate.Limit(1.0 / 180) // one per 3 minutes
	defaultIPBurst      = 10
	defaultIPMaxClients = 10_000
)

// ipv6ClientBits is the IPv6 prefix that counts as one client. A /64 is
// one subnet, the smallest unit an ISP delegates: one host can use any of
// its 2^64 addresses, so limiting single addresses would limit nothing.
const ipv6ClientBits = 64

// IPLimiter limits, per client address, the handshakes that would start
// an issuance, so that one client cannot spend the CA account's budget
// (the Manager's order budget per CA account) and leave nothing for everyone else. Call Allow once per
// issuance a client's handshake would start, after the policy has allowed
// the name and no certificate was found: not for handshakes served from
// the cache, and not for those that join an issuance already under way.
//
// A client is an IPv4 address or an IPv6 /64. Each has a token bucket of
// Burst issuances refilled at Rate. Clients are kept in a table of at
// most MaxClients, dropping the least recently seen, so a flood from many
// addresses holds bounded memory; a dropped client comes back with a full
// bucket, which only matters to a client with more addresses than the
// table holds, and such a client is the order budget's to stop.
//
// All clients behind one address share its bucket: a NAT, or a load
// balancer or local TCP forwarder that hides client addresses (loopback
// is not exempt). Raise Burst and Rate for such a deployment, or pass the
// real client address (PROXY protocol).
//
// The zero value is ready to use. An IPLimiter must not be copied or have
// its fields changed after first use. It is safe for concurrent use.
type IPLimiter struct {
	// Rate is how fast a client's budget refills, in issuances per
	// second. Zero means one per 3 minutes (20 an hour): with the
	// default Burst one client can start at most 10 + 60 = 70 orders in
	// any 3 hours, under a quarter of Let's Encrypt's 300 per account,
	// so it takes several clients acting together to spend the
	// account's budget. (10 a minute would let one client spend it six
	// times over.) rate.Inf means no limit.
	Rate rate.Limit

	// Burst is how many issuances a client may start at once. Zero
	// means 10: a person setting up a site, or a page that loads a
	// handful of new subdomains (www, api, cdn, img), gets them all
	// without waiting.
	Burst int

	// MaxClients is the most clients remembered. Zero means 10,000,
	// about 2 MB.
	MaxClients int

	mu      sync.Mutex // guards clients
	clients lru[netip.Addr, *rate.Limiter]
}

// Allow reports whether the client at ip may start an issuance now, and
// if so counts it. The zero netip.Addr (a connection that is not IP) is
// one client like any other.
func (l *IPLimiter) Allow(ip netip.Addr) bool {
	if l.Rate == rate.Inf {
		return true
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limiter(ip).AllowN(now, 1)
}

// Next reports when the client at ip may start an issuance again: now
// if Allow would let it, else when its budget has refilled by one (what
// a refused client is told to wait for).
func (l *IPLimiter) Next(ip netip.Addr) time.Time {
	now := time.Now()
	if l.Rate == rate.Inf {
		return now
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiter(ip)
	tokens := lim.TokensAt(now)
	if tokens >= 1 || lim.Limit() <= 0 {
		return now
	}
	return now.Add(time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second)))
}

// limiter is the budget of ip's client, made if new; l.mu held.
func (l *IPLimiter) limiter(ip netip.Addr) *rate.Limiter {
	r := l.Rate
	if r == 0 {
		r = defaultIPRate
	}
	key := clientKey(ip)
	if l.clients.items == nil {
		n := l.MaxClients
		if n <= 0 {
			n = defaultIPMaxClients
		}
		l.clients.init(n)
	}
	lim, ok := l.clients.get(key)
	if !ok {
		b := l.Burst
		if b <= 0 {
			b = defaultIPBurst
		}
		lim = rate.NewLimiter(r, b)
		l.clients.put(key, lim)
	}
	return lim
}

// clientKey returns the address that stands for ip's client: ip itself
// for IPv4 (IPv4-mapped IPv6 included), its /64 for IPv6, without zone.
func clientKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if !ip.Is6() {
		return ip
	}
	p, err := ip.Prefix(ipv6ClientBits)
	if err != nil {
		return ip // unreachable: every IPv6 address has a /64
	}
	return p.Addr()
}
