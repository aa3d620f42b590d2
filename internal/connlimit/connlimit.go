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
// once a minute per listener and limit, with the number closed. An IPv6 client
// counts by its /64, which is what one host usually holds.
//
// Limits are per listener: a process with two listeners may hold twice
// Max.
package connlimit

import (
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

// Listener is a net.Listener whose Accept returns only the connections
// within its Limits; the others it closes itself.
type Listener struct {
	net.Listener
	limits Limits
	logger *slog.Logger

	mu       sync.Mutex
	open     int
	byClient map[netip.Prefix]int // open connections per client; no zero entries

	rejected atomic.Uint64
	// loggedMax and loggedClient space the warnings of each limit.
	loggedMax, loggedClient every.Gate
}

// Listen wraps ln. logger receives the warnings (nil: slog.Default()).
func Listen(ln net.Listener, limits Limits, logger *slog.Logger) *Listener {
	if logger == nil {
		logger = slog.Default()
	}
	return &Listener{Listener: ln, limits: limits, logger: logger, byClient: map[netip.Prefix]int{}}
}

// Accept waits for the next connection within the limits. Connections over
// them are closed at once and not returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client := clientOf(c.RemoteAddr())
		if over := l.admit(client); over != "" {
			l.reject(c, client, over)
			continue
		}
		return &conn{Conn: c, l: l, client: client}, nil
	}
}

// Open is the number of connections open now, for tests and metrics.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Rejected is the number of connections closed over a limit so far.
func (l *Listener) Rejected() uint64 { return l.rejected.Load() }

// admit counts a new connection from client, or says which limit it is
// over ("max" or "client").
func (l *Listener) admit(client netip.Prefix) (over string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if max := l.limits.max(); max > 0 && l.open >= max {
		return "max"
	}
	if per := l.limits.perClient(); per > 0 && client.IsValid() && l.byClient[client] >= per {
		return "client"
	}
	l.open++
	if client.IsValid() {
		l.byClient[client]++
	}
	return ""
}

// release uncounts a connection from client.
func (l *Listener) release(client netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if !client.IsValid() {
		return
	}
	if n := l.byClient[client]; n > 1 {
		l.byClient[client] = n - 1
	} else {
		delete(l.byClient, client)
	}
}

// reject closes c with a reset, so that a flood leaves no sockets in
// TIME_WAIT, after a warning at most once a minute for each limit.
func (l *Listener) reject(c net.Conn, client netip.Prefix, over string) {
	n := l.rejected.Add(1)
	gate := &l.loggedClient
	if over == "max" {
		gate = &l.loggedMax
	}
	if gate.Allow(logEvery) {
		attrs := []any{slog.String("addr", l.Addr().String()), slog.Uint64("rejected", n)}
		if over == "max" {
			l.logger.Warn("connection limit reached; closing new connections at once", append(attrs, slog.Int("max_conns", l.limits.max()))...)
		} else {
			l.logger.Warn("connection limit of one client reached; closing its new connections at once",
				append(attrs, slog.String("client", client.String()), slog.Int("max_conns_per_client", l.limits.perClient()))...)
		}
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// clientOf is the address a connection counts against: the IPv4 address,
// or the /64 of an IPv6 one; invalid for other kinds of address (a Unix
// socket), which count only against Max.
func clientOf(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
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
	l      *Listener
	client netip.Prefix
	closed atomic.Bool
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.release(c.client)
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
