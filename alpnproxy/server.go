package alpnproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/every"
)

// ErrServerClosed is returned by [Server.Serve] after [Server.Shutdown] or
// [Server.Close].
var ErrServerClosed = errors.New("alpnproxy: server closed")

// Defaults for the zero values of [Server]'s fields.
const (
	defaultReadTimeout = 5 * time.Second
	defaultDialTimeout = 10 * time.Second
	defaultMaxConns    = 10000
	defaultIdleTimeout = 10 * time.Minute
)

// rejectLogEvery spaces the warnings that MaxConns was reached: a flood
// of connections must not become a flood of log lines.
const rejectLogEvery = time.Minute

// Server routes TCP connections by the ALPN protocols of their ClientHello:
// those offering acme-tls/1 to ALPNAddr, all others to FallbackAddr.
//
// The zero value is not useful: ALPNAddr and FallbackAddr must be set. Fields
// must not change after the first call to Serve.
type Server struct {
	// ALPNAddr is the host:port of the ACME client answering tls-alpn-01
	// (the connections offering acme-tls/1). Required.
	ALPNAddr string

	// FallbackAddr is the host:port of the real TLS server (every other
	// connection). Required.
	FallbackAddr string

	// ProxyProtocol makes the proxy start every connection to FallbackAddr
	// with a PROXY protocol v2 header carrying the client's address, so the
	// web server logs and limits the client rather than the proxy. The
	// fallback must then be configured to expect it (nginx: listen ...
	// proxy_protocol). False sends none. The ALPN backend never gets one:
	// ACME clients do not expect it.
	ProxyProtocol bool

	// ReadTimeout bounds the wait for the first TLS record. A client that
	// has not sent a complete record by then goes to the fallback with what
	// it sent. Zero means 5 seconds.
	ReadTimeout time.Duration

	// DialTimeout bounds connecting to a backend. Zero means 10 seconds.
	DialTimeout time.Duration

	// MaxConns limits the client connections handled at once, from accept
	// until they close, whether still sending their first record or
	// spliced. A connection accepted while MaxConns are open is closed at
	// once (with a reset), before anything is read from it: a flood of
	// connections cannot exhaust the proxy's file descriptors (two per
	// spliced connection) and memory, and the web server behind it sees no
	// more than MaxConns from it. Zero means 10,000; negative means no
	// limit.
	MaxConns int

	// MaxConnsPerClient limits how many of them come from one client
	// address (an IPv6 /64); one more is closed at once too, with a
	// warning at most once a minute, so that one host cannot take all of
	// MaxConns. Zero means 1,000; negative means no limit.
	MaxConnsPerClient int

	// IdleTimeout closes a spliced connection on which no byte has moved
	// in either direction for this long (a write the receiver does not
	// take counts as no byte moving), so that clients and backends that
	// go silent without closing do not hold it forever. With it, bytes
	// are copied through the proxy's buffers (4 KiB each way while a
	// connection is quiet, 32 KiB while it is busy) rather than spliced
	// by the kernel. Zero means 10 minutes; negative means no timeout.
	// The wait for the first record is bounded by ReadTimeout.
	IdleTimeout time.Duration

	// Logger receives per-connection detail at Debug and backend failures
	// at Warn (the first in a minute for each backend; the others at
	// Debug). Nil means slog.Default().
	Logger *slog.Logger

	accepted, toALPN, toFallback, notHello, dialErrors atomic.Uint64
	rejected, idleClosed                               atomic.Uint64
	active                                             atomic.Int64
	rejectLogged                                       every.Gate // the "limit reached" warning
	clientsOnce                                        sync.Once
	clients                                            *connlimit.Counter // MaxConnsPerClient's count
	dialLogged                                         [2]every.Gate      // the "backend unreachable" warning: fallback, alpn

	bufs sync.Pool // of *[bigBuffer]byte, for busy spliced connections

	inShutdown atomic.Bool    // set under mu; read without it in the accept loop
	wg         sync.WaitGroup // one per connection being handled; Add only under mu

	mu        sync.Mutex // guards listeners, conns and closing
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // client and backend connections open
	closing   bool                  // Close has run: new backend conns are closed at once
	// dialCtx ends when Close runs, so no dial outlives it by DialTimeout.
	dialCtx    context.Context
	cancelDial context.CancelFunc
}

// Stats are a [Server]'s counters since it was created.
type Stats struct {
	// Accepted counts accepted connections.
	Accepted uint64
	// ALPN counts connections routed to ALPNAddr.
	ALPN uint64
	// Fallback counts connections routed to FallbackAddr.
	Fallback uint64
	// NotClientHello counts the connections, routed to the fallback too,
	// whose first bytes were not a complete ClientHello: not TLS, truncated,
	// oversized, or nothing before ReadTimeout.
	NotClientHello uint64
	// DialErrors counts connections closed because their backend could not
	// be reached.
	DialErrors uint64
	// Rejected counts connections, among Accepted, closed at once because
	// MaxConns connections were open.
	Rejected uint64
	// IdleClosed counts spliced connections closed after IdleTimeout
	// without traffic.
	IdleClosed uint64
	// Active is the number of connections being handled now.
	Active int64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted:       s.accepted.Load(),
		ALPN:           s.toALPN.Load(),
		Fallback:       s.toFallback.Load(),
		NotClientHello: s.notHello.Load(),
		DialErrors:     s.dialErrors.Load(),
		Rejected:       s.rejected.Load(),
		IdleClosed:     s.idleClosed.Load(),
		Active:         s.active.Load(),
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) readTimeout() time.Duration {
	if s.ReadTimeout > 0 {
		return s.ReadTimeout
	}
	return defaultReadTimeout
}

func (s *Server) dialTimeout() time.Duration {
	if s.DialTimeout > 0 {
		return s.DialTimeout
	}
	return defaultDialTimeout
}

// maxConns is MaxConns with its default; not positive means no limit.
func (s *Server) maxConns() int {
	if s.MaxConns == 0 {
		return defaultMaxConns
	}
	return s.MaxConns
}

// idleTimeout is IdleTimeout with its default; not positive means none.
func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout == 0 {
		return defaultIdleTimeout
	}
	return s.IdleTimeout
}

// Serve accepts connections on ln and proxies each in its own goroutine,
// until ln fails or Shutdown or Close is called. It always returns a
// non-nil error: ErrServerClosed after Shutdown or Close. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	if s.ALPNAddr == "" || s.FallbackAddr == "" {
		ln.Close()
		return errors.New("alpnproxy: ALPNAddr and FallbackAddr must be set")
	}
	if !s.trackListener(ln, true) {
		ln.Close()
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	defer ln.Close()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.inShutdown.Load() {
				return ErrServerClosed
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				// Out of file descriptors and the like: wait, as
				// http.Server does, rather than spin or give up.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accepting a connection failed; retrying", slog.Any("err", err), slog.Duration("retry_in", backoff))
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		backoff = 0
		from, err := s.perClient().Admit(c.RemoteAddr())
		if err != nil {
			s.perClient().Reject(c, from, err, ln.Addr().String())
			continue
		}
		s.accepted.Add(1)
		switch err := s.startConn(c); {
		case errors.Is(err, errTooMany):
			s.perClient().Release(from)
			s.reject(c)
		case err != nil:
			s.perClient().Release(from)
			c.Close()
		default:
			go func() {
				defer s.perClient().Release(from)
				s.handle(c)
			}()
		}
	}
}

// perClient is the count of MaxConnsPerClient (the whole MaxConns is
// counted by startConn, which tracks each connection for Close).
func (s *Server) perClient() *connlimit.Counter {
	s.clientsOnce.Do(func() {
		s.clients = connlimit.NewCounter(connlimit.Limits{Max: -1, PerClient: s.MaxConnsPerClient}, s.logger())
	})
	return s.clients
}

// errTooMany is startConn's answer when MaxConns connections are open.
var errTooMany = errors.New("alpnproxy: too many connections")

// reject closes c, accepted while MaxConns connections were open, at once:
// with a reset, so that the socket is freed now rather than kept in
// TIME_WAIT, which a flood would fill. It warns at most once a minute.
func (s *Server) reject(c net.Conn) {
	s.rejected.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
	if s.rejectLogged.Allow(rejectLogEvery) {
		s.logger().Warn("connection limit reached; closing new connections at once",
			slog.Int("max_conns", s.maxConns()), slog.Uint64("rejected", s.rejected.Load()))
	}
}

// warnUnreachable says that the backend of route could not be reached for
// a connection: at warn the first time in a minute for each backend
// (with the count so far), at debug otherwise, so that a web server
// restarting, or a stopped ACME client, while clients keep coming, is not
// a flood of log lines.
func (s *Server) warnUnreachable(route, addr string, err error) {
	attrs := []any{slog.String("route", route), slog.String("addr", addr), slog.Any("err", err),
		slog.Uint64("unreachable", s.dialErrors.Load())}
	last := &s.dialLogged[0]
	if route == "alpn" {
		last = &s.dialLogged[1]
	}
	if last.Allow(rejectLogEvery) {
		s.logger().Warn("backend unreachable; connection closed", attrs...)
		return
	}
	s.logger().Debug("backend unreachable; connection closed", attrs...)
}

// Shutdown stops the server: it closes the listeners at once, so no new
// connection is accepted, then waits for the open connections to finish on
// their own. If ctx ends first, Shutdown closes the connections still open,
// waits for their goroutines to end, and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every open connection at once. It does
// not wait for the connection goroutines; Shutdown does.
func (s *Server) Close() error {
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	if s.cancelDial != nil {
		s.cancelDial()
	}
	for c := range s.conns {
		c.Close()
	}
	return nil
}

// closeListeners marks the server as shutting down and closes its
// listeners. The mark is set under mu, so no startConn can call wg.Add
// after Shutdown's wg.Wait has begun.
func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inShutdown.Store(true)
	for ln := range s.listeners {
		ln.Close()
	}
}

// trackListener adds or removes ln; adding reports false once the server is
// shutting down.
func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.inShutdown.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	return true
}

// startConn registers a newly accepted client connection and its handler
// goroutine. It returns ErrServerClosed once the server is shutting down,
// and errTooMany while MaxConns connections are open. The count is checked
// and raised under mu, so that Serve loops on several listeners cannot
// together exceed it; it is lowered without mu, which can only make room.
func (s *Server) startConn(c net.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return ErrServerClosed
	}
	if max := s.maxConns(); max > 0 && s.active.Load() >= int64(max) {
		return errTooMany
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	if s.dialCtx == nil {
		s.dialCtx, s.cancelDial = context.WithCancel(context.Background())
	}
	s.active.Add(1)
	s.wg.Add(1)
	return nil
}

// trackConn adds or removes c; adding reports false once Close has run, so
// a connection accepted or dialled during Close cannot escape it.
func (s *Server) trackConn(c net.Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.closing {
		return false
	}
	if s.conns == nil {
		s.conns = make(map[net.Conn]struct{})
	}
	s.conns[c] = struct{}{}
	return true
}

// handle proxies one client connection.
func (s *Server) handle(client net.Conn) {
	defer s.wg.Done()
	defer s.active.Add(-1)
	defer s.trackConn(client, false)
	defer client.Close()
	log := s.logger()

	first, err := readFirstRecord(client, s.readTimeout())
	if len(first) == 0 && err != nil && !isTimeout(err) {
		// Gone (EOF, reset) before sending anything: nothing to proxy.
		log.Debug("client left before sending", slog.String("remote_ip", hostOf(client.RemoteAddr())), slog.Any("err", err))
		return
	}
	addr, route := s.FallbackAddr, "fallback"
	hello, perr := ParseClientHello(first)
	switch {
	case perr != nil:
		s.notHello.Add(1)
	case hello.OffersACME():
		addr, route = s.ALPNAddr, "alpn"
	}
	if route == "alpn" {
		s.toALPN.Add(1)
	} else {
		s.toFallback.Add(1)
	}
	if log.Enabled(context.Background(), slog.LevelDebug) {
		attrs := []any{slog.String("route", route), slog.String("remote_ip", hostOf(client.RemoteAddr()))}
		if hello != nil {
			attrs = append(attrs, slog.String("name", hello.ServerName))
		} else {
			attrs = append(attrs, slog.Any("err", perr))
		}
		log.Debug("connection routed", attrs...)
	}

	s.mu.Lock()
	dialCtx := s.dialCtx // set by startConn before this goroutine began
	s.mu.Unlock()
	d := net.Dialer{Timeout: s.dialTimeout()}
	backend, err := d.DialContext(dialCtx, "tcp", addr)
	if err != nil {
		if dialCtx.Err() != nil {
			return // Close ran: not the backend's fault
		}
		s.dialErrors.Add(1)
		s.warnUnreachable(route, addr, err)
		return
	}
	defer backend.Close()
	if !s.trackConn(backend, true) {
		return
	}
	defer s.trackConn(backend, false)

	// The client's bytes were read under a deadline; the splice has none.
	if err := client.SetReadDeadline(time.Time{}); err != nil {
		return
	}
	replay := first
	if route == "fallback" && s.ProxyProtocol {
		replay = append(proxyHeaderV2(client.RemoteAddr(), client.LocalAddr()), first...)
	}
	if _, err := backend.Write(replay); err != nil {
		log.Debug("replaying to backend failed", slog.String("addr", addr), slog.Any("err", err))
		return
	}
	if idle := s.idleTimeout(); idle > 0 {
		if s.spliceIdle(client, backend, idle) {
			s.idleClosed.Add(1)
			log.Debug("idle connection closed", slog.String("route", route),
				slog.String("remote_ip", hostOf(client.RemoteAddr())), slog.Duration("idle", idle))
		}
		return
	}
	splice(client, backend, copyAll)
}

// readFirstRecord reads the client's first TLS record (header and body),
// stopping early when the bytes cannot be one: the first byte is not a
// handshake record, or the length is over the limit. It never reads past the
// record, so the rest of the stream is left for the splice, and it gives up
// at the deadline. It returns what it read, and the error that stopped it,
// if any.
func readFirstRecord(c net.Conn, timeout time.Duration) ([]byte, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, fmt.Errorf("setting read deadline: %w", err)
	}
	buf := make([]byte, recordHeaderLen+maxRecordLen)
	n := 0
	want := recordHeaderLen
	for n < want {
		m, err := c.Read(buf[n:want])
		n += m
		if n >= 1 && buf[0] != recordTypeHandshake {
			return buf[:n], nil // not TLS: no point waiting for more
		}
		if want == recordHeaderLen && n >= recordHeaderLen {
			length := int(buf[3])<<8 | int(buf[4])
			if length > maxRecordLen {
				return buf[:n], nil // oversized: not a valid record
			}
			want += length
		}
		if err != nil {
			return buf[:n], err
		}
	}
	return buf[:n], nil
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func hostOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}
