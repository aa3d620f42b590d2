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
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/every"
	"github.com/pires/go-proxyproto"
)

// HeaderTimeout bounds how long a trusted source may take to send the
// header; a balancer sends it at once.
const HeaderTimeout = 5 * time.Second

// ClientLimiter holds the clients that balancers' headers name to a
// per-client connection limit: package connlimit's Listener is one, which
// exempts the balancers themselves at accept.
type ClientLimiter interface {
	// AdmitClient counts a connection against client (the header's
	// source) or refuses it; what names the listener, for a warning.
	AdmitClient(client net.Addr, what string) (netip.Prefix, error)
	// ReleaseClient uncounts what AdmitClient counted.
	ReleaseClient(netip.Prefix)
}

// Listen wraps ln: a connection from an address in trusted must start
// with a PROXY header, whose source address becomes its RemoteAddr; any
// other connection is returned as ln accepted it. With no trusted
// prefixes, ln itself is returned. A trusted connection whose header is
// missing or malformed is closed by its server at its first read, with a
// warning on logger (nil: slog.Default()) at most once a minute: the
// balancer at that address is most likely not set up to send headers.
//
// When ln is a ClientLimiter, each trusted connection is also counted
// against the client its header names, at its first read, and closed
// there when that client is over its limit.
func Listen(ln net.Listener, trusted []netip.Prefix, logger *slog.Logger) net.Listener {
	if len(trusted) == 0 {
		return ln
	}
	if logger == nil {
		logger = slog.Default()
	}
	limiter, _ := ln.(ClientLimiter)
	return &listener{limiter: limiter, what: ln.Addr().String(), Listener: &proxyproto.Listener{
		Listener:          sentListener{ln},
		ReadHeaderTimeout: HeaderTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if Trusted(o.Upstream, trusted) {
				return proxyproto.REQUIRE, nil
			}
			return proxyproto.SKIP, nil
		},
	}, logger: logger}
}

// ListenLimited wraps raw in limits (package connlimit) with the trusted
// balancers exempt at accept, then in Listen: every front-end listener
// that reads PROXY headers is this one composition, so a balancer is
// named once and each client behind it is held to limits.PerClient.
func ListenLimited(raw net.Listener, limits connlimit.Limits, trusted []netip.Prefix, logger *slog.Logger) net.Listener {
	limits.Exempt = trusted
	return Listen(connlimit.Listen(raw, limits, logger), trusted, logger)
}

// warnEvery spaces the warnings of one listener.
const warnEvery = time.Minute

// listener is a proxyproto.Listener whose trusted connections warn of a
// bad header.
type listener struct {
	net.Listener
	logger  *slog.Logger
	limiter ClientLimiter // nil: clients are not counted
	what    string        // the address listened on, for the limiter's warning
	warned  every.Gate    // the missing-header warning
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if pc, ok := c.(*proxyproto.Conn); ok && err == nil {
		return &conn{Conn: pc, l: l}, nil
	}
	return c, err
}

// conn is a connection from a trusted source.
type conn struct {
	*proxyproto.Conn
	l *listener

	counted atomic.Bool // the client has been counted, or needs not be
	mu      sync.Mutex  // orders counting and Close
	closed  bool
	client  netip.Prefix // what the limiter counted; invalid for nothing
}

// Read is the connection's Read, warning when it fails for the header of
// a connection that sent bytes: one closed before its first byte (a TCP
// health check, as AWS NLB's) is not a balancer that forgot its header.
// Its first read counts the client once the header is read, before any
// byte after it arrives.
func (c *conn) Read(b []byte) (int, error) {
	if c.l.limiter != nil && !c.counted.Load() {
		if err := c.count(); err != nil {
			c.Close()
			return 0, err
		}
	}
	n, err := c.Conn.Read(b)
	if sc, ok := c.Raw().(*sentConn); err != nil && ok && sc.sent.Load() &&
		strings.HasPrefix(err.Error(), "proxyproto: ") { // the header errors of go-proxyproto
		if c.l.warned.Allow(warnEvery) {
			c.l.logger.Warn("connection from a load balancer address without a valid PROXY protocol header; closed: have the balancer send one (HAProxy: send-proxy-v2)",
				slog.String("from", c.Raw().RemoteAddr().String()), slog.String("err", err.Error()))
		}
	}
	return n, err
}

// count reads the header and counts the connection against the client
// it names. A connection without a valid header (whose read after fails)
// or with a v2 LOCAL one (the balancer's own health check) names none.
// One whose header names no address (v1 "PROXY UNKNOWN", which
// go-proxyproto reads as LOCAL, and which a balancer sends for a health
// check or for a client it cannot name, as nginx's stream module does for
// non-TCP ones; v2 with no address) counts against the balancer's own
// address, so that such clients are limited together, not unlimited.
func (c *conn) count() error {
	h := c.Conn.ProxyHeader() // read outside the lock: Close must not wait for the balancer
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counted.Swap(true) {
		return nil
	}
	if c.closed {
		return net.ErrClosed
	}
	if h == nil || h.Command.IsLocal() && h.Version == 2 {
		return nil
	}
	src := h.SourceAddr
	if src == nil {
		src = c.Raw().RemoteAddr()
	}
	client, err := c.l.limiter.AdmitClient(src, c.l.what)
	if err != nil {
		return err
	}
	c.client = client
	return nil
}

// Close closes the connection and uncounts its client.
func (c *conn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if c.client.IsValid() {
			c.l.limiter.ReleaseClient(c.client)
		}
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// sentListener accepts sentConns.
type sentListener struct{ net.Listener }

func (l sentListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sentConn{Conn: c}, nil
}

// sentConn is an accepted connection that knows whether its peer sent a
// byte.
type sentConn struct {
	net.Conn
	sent atomic.Bool
}

func (c *sentConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.sent.Load() {
		c.sent.Store(true)
	}
	return n, err
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
