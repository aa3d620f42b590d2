// Package connlimit bounds the connections a listener hands to its server:
// at most Max at once, and at most PerClient from one client address.
//
// Without a bound, anyone who can reach a port can open connections until
// the process runs out of file descriptors; then it can no longer open its
// storage, its backends or the CA, and every name fails, not only the
// attacker's. Each limit here keeps descriptors for that work, and the one
// per client keeps a single host from taking all of them.
//
// A connection over a limit is closed at accept, before any byte is read,
// with a reset (no TIME_WAIT left behind), and a warning says so at most
// once a minute per listener and limit, with the number closed; a
// Refusals (Limits.Refusals) counts every one, for the metrics. An IPv6 client
// counts by its /64, which is what one host usually holds.
//
// Limits are per listener: a process with two listeners may hold twice
// Max.
package connlimit

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/every"
)

// Defaults of Limits: Max is alpn-proxy's default too; PerClient leaves
// room for a busy office or carrier NAT behind one address.
const (
	DefaultMax       = 10000
	DefaultPerClient = 1000
)

// logEvery spaces the warnings of one listener.
const logEvery = time.Minute

// Limits are the bounds of a listener. The zero Limits are the defaults.
type Limits struct {
	// Max is how many connections may be open at once. Zero: DefaultMax;
	// negative: no limit.
	Max int
	// PerClient is how many of them may come from one client address (an
	// IPv6 /64). Zero: DefaultPerClient; negative: no limit.
	PerClient int
	// Exempt are addresses PerClient does not apply to at accept: the TCP
	// load balancers a listener reads PROXY protocol headers from
	// (package proxyprotocol), each of whose connections is another
	// client's and counts against that client once its header is read
	// (AdmitClient). proxyprotocol.ListenLimited sets it.
	Exempt []netip.Prefix
	// Refusals counts the connections (or requests) refused, for the
	// metrics; nil: they are only logged.
	Refusals *Refusals
}

// max is l.Max with its default; not positive means no limit.
func (l Limits) max() int {
	if l.Max == 0 {
		return DefaultMax
	}
	return l.Max
}

// perClient is l.PerClient with its default; not positive means no limit.
func (l Limits) perClient() int {
	if l.PerClient == 0 {
		return DefaultPerClient
	}
	return l.PerClient
}

// Counter counts open connections against Limits and closes the ones
// over them, warning at most once a minute for each limit. A Listener
// uses one; a server that must keep its connections unwrapped
// (alpn-proxy hands the *net.TCPConn to the kernel's splice) uses one
// itself. Make one with NewCounter.
type Counter struct {
	limits Limits
	logger *slog.Logger

	mu       sync.Mutex
	open     int
	byClient map[netip.Prefix]int // open connections per client; no zero entries

	rejected atomic.Uint64
	// loggedMax and loggedClient space the warnings of each limit.
	loggedMax, loggedClient every.Gate
	// requests makes the warnings speak of requests in progress
	// (NewRequestCounter), not connections.
	requests bool
}

// The errors of Counter.Admit: which limit a connection is over.
var (
	ErrTooMany           = errors.New("connection limit reached")
	ErrTooManyFromClient = errors.New("connection limit of one client reached")
)

// NewCounter returns a Counter of limits that warns on logger (nil:
// slog.Default()).
func NewCounter(limits Limits, logger *slog.Logger) *Counter {
	if logger == nil {
		logger = slog.Default()
	}
	return &Counter{limits: limits, logger: logger, byClient: map[netip.Prefix]int{}}
}

// NewRequestCounter is NewCounter for the requests a server has in
// progress rather than its connections: an HTTP/2 connection carries up to
// 250 requests at once, each of which a proxy may hold a backend
// connection for, so counting connections alone lets one client take
// 250 times its share of descriptors. Its warnings speak of requests; the
// caller answers a request over a limit (503) and calls Refused.
func NewRequestCounter(limits Limits, logger *slog.Logger) *Counter {
	c := NewCounter(limits, logger)
	c.requests = true
	return c
}

// Refused counts a request Admit refused with err and warns of it, at
// most once a minute for each limit, naming what (the listener's address).
func (c *Counter) Refused(client netip.Prefix, err error, what string) { c.warn(client, err, what) }

// Admit counts a new connection from addr and returns the client it
// counts against, for Release when it closes; or ErrTooMany or
// ErrTooManyFromClient, and it is not counted.
func (c *Counter) Admit(addr net.Addr) (netip.Prefix, error) {
	client := c.limits.clientOf(addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	if max := c.limits.max(); max > 0 && c.open >= max {
		return client, ErrTooMany
	}
	if per := c.limits.perClient(); per > 0 && client.IsValid() && c.byClient[client] >= per {
		return client, ErrTooManyFromClient
	}
	c.open++
	if client.IsValid() {
		c.byClient[client]++
	}
	return client, nil
}

// Release uncounts a connection Admit counted for client.
func (c *Counter) Release(client netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open--
	c.releaseClient(client)
}

// AdmitClient counts a connection Admit took from an Exempt balancer
// against the client the balancer's PROXY protocol header names (addr),
// under PerClient only (Max counted it at accept), and returns the client
// for ReleaseClient when it closes. Exempt does not apply to addr: a
// client in the balancers' own network is still one client. Over the
// limit it returns ErrTooManyFromClient, having warned as Reject does
// (what names the listener), and the caller closes the connection.
func (c *Counter) AdmitClient(addr net.Addr, what string) (netip.Prefix, error) {
	client := clientPrefix(ipOf(addr))
	if !client.IsValid() {
		return client, nil
	}
	c.mu.Lock()
	over := c.limits.perClient() > 0 && c.byClient[client] >= c.limits.perClient()
	if !over {
		c.byClient[client]++
	}
	c.mu.Unlock()
	if over {
		c.warn(client, ErrTooManyFromClient, what)
		return client, ErrTooManyFromClient
	}
	return client, nil
}

// ReleaseClient uncounts a client AdmitClient counted.
func (c *Counter) ReleaseClient(client netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.releaseClient(client)
}

// releaseClient uncounts one of client's connections; c.mu is held.
func (c *Counter) releaseClient(client netip.Prefix) {
	if !client.IsValid() {
		return
	}
	if n := c.byClient[client]; n > 1 {
		c.byClient[client] = n - 1
	} else {
		delete(c.byClient, client)
	}
}

// Reject closes conn, which Admit refused with err, with a reset, so that
// a flood leaves no sockets in TIME_WAIT, after a warning at most once a
// minute for each limit naming what (the listener's address).
func (c *Counter) Reject(conn net.Conn, client netip.Prefix, err error, what string) {
	c.warn(client, err, what)
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// warn counts a connection closed over a limit (in Limits.Refusals too) and
// warns of it at most once a minute for each limit.
func (c *Counter) warn(client netip.Prefix, err error, what string) {
	n := c.rejected.Add(1)
	gate := &c.loggedClient
	if errors.Is(err, ErrTooMany) {
		gate = &c.loggedMax
	}
	c.limits.Refusals.add(RefusalKey{Listener: what, Requests: c.requests, PerClient: !errors.Is(err, ErrTooMany)})
	if gate.Allow(logEvery) {
		attrs := []any{slog.String("addr", what), slog.Uint64("rejected", n)}
		switch {
		case c.requests && errors.Is(err, ErrTooMany):
			c.logger.Warn("request limit reached; answering new requests with 503", append(attrs, slog.Int("max_conns", c.limits.max()))...)
		case c.requests:
			c.logger.Warn("request limit of one client reached; answering its new requests with 503",
				append(attrs, slog.String("client", client.String()), slog.Int("max_conns_per_client", c.limits.perClient()))...)
		case errors.Is(err, ErrTooMany):
			c.logger.Warn("connection limit reached; closing new connections at once", append(attrs, slog.Int("max_conns", c.limits.max()))...)
		default:
			c.logger.Warn("connection limit of one client reached; closing its new connections at once",
				append(attrs, slog.String("client", client.String()), slog.Int("max_conns_per_client", c.limits.perClient()))...)
		}
	}
}

// Open is the number of connections open now, for tests and metrics.
func (c *Counter) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open
}

// Rejected is the number of connections closed over a limit so far.
func (c *Counter) Rejected() uint64 { return c.rejected.Load() }

// Listener is a net.Listener whose Accept returns only the connections
// within its Limits; the others it closes itself.
type Listener struct {
	net.Listener
	*Counter
}

// Listen wraps ln. logger receives the warnings (nil: slog.Default()).
// Its refusals count in limits.Refusals, at zero from now.
func Listen(ln net.Listener, limits Limits, logger *slog.Logger) *Listener {
	limits.Refusals.Start(ln.Addr().String(), false)
	return &Listener{Listener: ln, Counter: NewCounter(limits, logger)}
}

// RefusalKey is what Refusals counts by.
type RefusalKey struct {
	// Listener is the address listened on ("?" for a request whose
	// listener is not known).
	Listener string
	// Requests: requests in progress refused (NewRequestCounter), rather
	// than connections.
	Requests bool
	// PerClient: over Limits.PerClient, rather than Max.
	PerClient bool
}

// Refusals counts the connections and requests refused by the Counters
// whose Limits.Refusals it is, by RefusalKey, for the metrics
// (certkeeper_connections_refused_total). A front-end makes one and
// gives it to all its listeners' Limits and to its metrics; two
// front-ends in one process (or two tests) count apart. Its zero value
// is ready to use, and it is safe for concurrent use. A refusal costs a
// map lookup and an atomic add; an admitted connection, nothing.
type Refusals struct {
	counts sync.Map // RefusalKey → *atomic.Uint64; keys are never deleted
}

// count is k's count, made at zero on first use.
func (r *Refusals) count(k RefusalKey) *atomic.Uint64 {
	v, ok := r.counts.Load(k)
	if !ok {
		v, _ = r.counts.LoadOrStore(k, new(atomic.Uint64))
	}
	return v.(*atomic.Uint64)
}

// Start makes listener's counts of both limits, of connections or (with
// requests) of requests, at zero unless they exist: a series that is
// there from the listener's start lets a rate or increase see the first
// refusal. Listen calls it. A nil Refusals does nothing.
func (r *Refusals) Start(listener string, requests bool) {
	if r == nil {
		return
	}
	r.count(RefusalKey{Listener: listener, Requests: requests})
	r.count(RefusalKey{Listener: listener, Requests: requests, PerClient: true})
}

// add counts a refusal of k; a nil Refusals does nothing.
func (r *Refusals) add(k RefusalKey) {
	if r != nil {
		r.count(k).Add(1)
	}
}

// Counts returns how many connections and requests were refused so far,
// by key: those Start made are there at zero. A nil Refusals has none.
func (r *Refusals) Counts() map[RefusalKey]uint64 {
	out := map[RefusalKey]uint64{}
	if r == nil {
		return out
	}
	r.counts.Range(func(k, v any) bool {
		out[k.(RefusalKey)] = v.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// Accept waits for the next connection within the limits. Connections over
// them are closed at once and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client, err := l.Admit(c.RemoteAddr())
		if err != nil {
			l.Reject(c, client, err, l.Addr().String())
			continue
		}
		return &conn{Conn: c, c: l.Counter, client: client}, nil
	}
}

// clientOf is the address a connection counts against: the IPv4 address,
// or the /64 of an IPv6 one; invalid for an Exempt address and for other
// kinds of address (a Unix socket), which count only against Max.
func (l Limits) clientOf(a net.Addr) netip.Prefix {
	ip := ipOf(a)
	for _, p := range l.Exempt {
		if p.Contains(ip) {
			return netip.Prefix{}
		}
	}
	return clientPrefix(ip)
}

// ipOf is a TCP address's IP, IPv4 unmapped; invalid for other kinds of
// address.
func ipOf(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	return ip.Unmap()
}

// clientPrefix is the client ip counts as: itself for IPv4, its /64 for
// IPv6; invalid for an invalid ip.
func clientPrefix(ip netip.Addr) netip.Prefix {
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// conn is an admitted connection; its first Close uncounts it.
type conn struct {
	net.Conn
	c      *Counter
	client netip.Prefix
	closed atomic.Bool
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.c.Release(c.client)
	}
	return err
}

// CloseWrite half-closes the connection when the underlying one can, as
// net/http asks of a TCP connection before it closes it.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
