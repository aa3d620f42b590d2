package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/handshake"
	"github.com/certkeeper/certkeeper/internal/proxyprotocol"
)

// Defaults of the Server's limits.
const (
	// DefaultReadHeaderTimeout bounds how long a client may take to send a
	// request's header: a slowloris client cannot hold a connection
	// open by trickling one.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection (HTTP/1.1 or
	// HTTP/2) may sit between requests before it is closed.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes limits the size of a request's header, HTTP/1
	// request line included (HTTP/2: the decoded header list). 64 KiB is
	// twice nginx's default (four 8 KiB buffers) and a sixteenth of
	// net/http's: large enough for any browser's cookies, small enough
	// that a flood of huge headers costs little memory. A larger header
	// gets 431 Request Header Fields Too Large.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConns is how many connections a listener keeps open at
	// once, as alpn-proxy's default.
	DefaultMaxConns = connlimit.DefaultMax
	// DefaultMaxConnsPerClient is how many of them one client address may
	// hold: room for a busy office behind one address, a tenth of the
	// listener's for an attacker's host.
	DefaultMaxConnsPerClient = connlimit.DefaultPerClient
)

// Server serves a Handler over TLS, with HTTP/2 and HTTP/1.1, on one or
// more listeners, and stops gracefully with Shutdown.
//
// It sets no ReadTimeout or WriteTimeout, on purpose: a request body (an
// upload) or a response (a stream, a WebSocket) may rightly take hours. The
// time to send a header, the time between requests, a client's time to
// send the next part of a body or take the next of a response
// (StallTimeout), and a backend's time to answer (Handler's transport)
// are what is bounded.
//
// The zero Server, given a TLSConfig, serves a zero Handler. Its fields must
// not change after the first call to Serve, ListenAndServe or Shutdown.
type Server struct {
	// TLSConfig is the caller's TLS configuration, required: Certificates,
	// GetCertificate or GetConfigForClient must be set, as they are in a
	// certkeeper Manager's TLSConfig(). Its NextProtos may list
	// "acme-tls/1" for tls-alpn-01; "h2" and "http/1.1" are added when
	// missing, so HTTP/2 is always offered. The Server does not modify it.
	TLSConfig *tls.Config
	// Handler answers the requests. Nil: a zero *Handler with Logger.
	// Server.Shutdown calls its CloseIdleConnections method, if it has
	// one.
	Handler http.Handler
	// Logger receives the messages net/http would print to its ErrorLog:
	// TLS handshake failures at Debug (an Internet-facing port sees them
	// all day), handler panics at Error, the rest (accept errors) at
	// Warn. It is also the Logger of the Handler used when Handler is
	// nil. Nil: slog.Default().
	Logger *slog.Logger
	// ReadHeaderTimeout is how long a client may take to send a request
	// header. Zero: DefaultReadHeaderTimeout. Negative: no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long an idle keep-alive connection is kept.
	// Zero: DefaultIdleTimeout. Negative: no limit.
	IdleTimeout time.Duration
	// StallTimeout is how long a read of a request's body, or a write of
	// its response, may wait for the client before the request is ended
	// (the time between two reads or writes, not the whole transfer).
	// Zero: DefaultStallTimeout. Negative: no limit.
	StallTimeout time.Duration
	// MaxHeaderBytes limits the size of a request's header. Zero or
	// negative: DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxConns is how many client connections each listener keeps open
	// at once; one more is closed at accept (with a warning at most once a
	// minute), so that a flood of connections cannot take the descriptors
	// that storage, backends and the CA need. Zero: DefaultMaxConns;
	// negative: no limit.
	MaxConns int
	// MaxConnsPerClient is how many of them may come from one client
	// address (an IPv6 /64); behind a ProxyProtocolFrom balancer, from the
	// client its header names. Behind a load balancer that hides client
	// addresses, every connection comes from the balancer: raise it.
	// Zero: DefaultMaxConnsPerClient; negative: no limit.
	MaxConnsPerClient int
	// ProxyProtocolFrom are the addresses of TCP load balancers in front
	// of the Server that start each connection with a PROXY protocol
	// header (v1 or v2): a connection from them must, and the client
	// address in it is the request's RemoteAddr (X-Forwarded-For, the
	// Manager's per-client limits, logs). A connection from anywhere else
	// is taken as it is, so no client can claim another address. Their
	// connections count against MaxConns, and against MaxConnsPerClient
	// for the client each header names. Empty: no PROXY protocol.
	ProxyProtocolFrom []netip.Prefix
	// Refusals counts the connections closed and the requests answered
	// 503 over MaxConns and MaxConnsPerClient, by listener, for the
	// metrics: a monitor.Monitor's Refusals. Nil: they are only logged.
	Refusals *connlimit.Refusals

	once    sync.Once
	srv     *http.Server
	handler http.Handler
	// inflight bounds the requests in progress as the listeners bound
	// connections (MaxConns, MaxConnsPerClient): over HTTP/2 one
	// connection carries up to 250, each of which may hold a backend
	// connection.
	inflight *connlimit.Counter
	cancel   context.CancelCauseFunc // cancels every request's context; see Shutdown
	active   atomic.Int64            // handler calls in progress, upgraded connections included
}

// ErrServerStopping is the cause (context.Cause) of the contexts of the
// requests a Server's Shutdown cut at its deadline: the Handler answers
// those still waiting for their backend with a 503 page.
var ErrServerStopping = errors.New("proxy server: stopping")

// cutGrace is how long Shutdown, at its deadline, gives the handlers of the
// requests it cancelled to answer before it closes their connections.
const cutGrace = time.Second

// ErrNoTLSConfig is returned by Serve and ListenAndServe when the Server has
// no TLSConfig, or a TLSConfig without any source of certificates.
var ErrNoTLSConfig = errors.New("proxy server: no TLS certificates: set TLSConfig, e.g. to a certkeeper Manager's TLSConfig()")

// Serve accepts TLS connections on ln, which it closes when it returns, and
// serves requests on them until Shutdown. It returns http.ErrServerClosed
// after Shutdown, as http.Server does, and another error otherwise. Serve
// may be called for several listeners (IPv4 and IPv6, say) at once.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.check(); err != nil {
		ln.Close()
		return err
	}
	s.once.Do(s.init)
	ln = proxyprotocol.ListenLimited(ln, s.limits(), s.ProxyProtocolFrom, s.logger())
	s.Refusals.Start(ln.Addr().String(), true)
	// ServeTLS clones TLSConfig and adds "h2" and "http/1.1" to its
	// NextProtos, which is what makes HTTP/2 negotiable.
	err := s.srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return fmt.Errorf("serving HTTPS on %s: %w", ln.Addr(), err)
}

// ListenAndServe listens on the TCP address addr (":https" if empty) and
// calls Serve.
func (s *Server) ListenAndServe(addr string) error {
	if err := s.check(); err != nil {
		return err
	}
	if addr == "" {
		addr = ":https"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	return s.Serve(ln)
}

// Shutdown stops the Server gracefully, for SIGTERM: it closes the
// listeners at once, lets requests in progress finish (HTTP/2 clients are
// told with GOAWAY), closes connections as they become idle, and waits,
// until ctx is done, for the upgraded connections (WebSockets) too, which
// http.Server.Shutdown alone would leave running. It returns nil when all
// of them ended by themselves.
//
// When ctx is done first, Shutdown cuts what is left: it cancels the
// context of every request still in progress (which closes their backend
// connections, and with them upgraded client connections; a request still
// waiting for its backend's answer gets a 503 page), gives their handlers
// a second to answer, and closes the remaining client connections, then
// returns an error wrapping ctx.Err() that says how many requests it cut.
// An already expired ctx stops the Server at once.
//
// Serve returns http.ErrServerClosed as soon as Shutdown starts. After
// Shutdown the Server cannot be used again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(s.init)
	err := s.srv.Shutdown(ctx)
	if err == nil {
		err = s.waitHandlers(ctx)
	}
	open := s.active.Load()
	s.cancel(ErrServerStopping)
	if err != nil {
		err = &DrainError{Cut: int(open), Err: err}
		// The handlers of the requests just cancelled answer (a 503 page,
		// not a page blaming the backend, nor a cut connection) before
		// their connections close.
		grace, cancel := context.WithTimeout(context.Background(), cutGrace)
		_ = s.waitHandlers(grace)
		// A handler that returned has handed its answer to its
		// connection, which writes it on its own goroutine: Close at once
		// cut an HTTP/2 one before its 503 was sent (a CI run). Shutdown
		// again waits, within the grace, for the connections to go idle.
		_ = s.srv.Shutdown(grace)
		cancel()
		s.srv.Close()
	}
	if c, ok := s.handler.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return err
}

// DrainError is Shutdown's error when its ctx ended first: Cut requests
// (WebSockets included) were still in progress, and were cut.
type DrainError struct {
	Cut int   // requests in progress (upgraded connections included) when ctx ended
	Err error // ctx's error
}

// Error says how many requests were cut, when any were.
func (e *DrainError) Error() string {
	if e.Cut == 0 {
		return "draining connections: " + e.Err.Error()
	}
	return fmt.Sprintf("draining connections: requests in progress cut (WebSockets included): %d: %v", e.Cut, e.Err)
}

// Unwrap returns ctx's error.
func (e *DrainError) Unwrap() error { return e.Err }

// check reports a Server that cannot serve TLS at all.
func (s *Server) check() error {
	c := s.TLSConfig
	if c == nil || len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
		return ErrNoTLSConfig
	}
	return nil
}

func (s *Server) init() {
	s.handler = s.Handler
	if s.handler == nil {
		s.handler = &Handler{Logger: s.Logger}
	}
	// Every request's context descends from base: cancelling it ends
	// the requests that outlive Shutdown's deadline, and the upgraded
	// connections, which http.Server no longer tracks.
	base, cancel := context.WithCancelCause(context.Background())
	s.cancel = cancel
	// net/http's HTTP/2 setup appends to TLSConfig.NextProtos in place:
	// give it a copy, so the caller's config (shared with other
	// listeners, perhaps) is left as it was.
	var tc *tls.Config
	if s.TLSConfig != nil {
		tc = s.TLSConfig.Clone()
		tc.NextProtos = slices.Clone(tc.NextProtos)
		handshake.Extend(tc, orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout)) // a first handshake waits for its certificate
	}
	s.inflight = connlimit.NewRequestCounter(s.limits(), s.logger())
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		TLSConfig:         tc,
		ReadHeaderTimeout: orDefault(s.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       orDefault(s.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    s.maxHeaderBytes(),
		ErrorLog:          newErrorLog(s.logger),
		BaseContext: func(ln net.Listener) context.Context { // which listener a request came on, for serveHTTP
			return context.WithValue(base, listenerKey{}, ln.Addr().String())
		},
	}
}

// limits are the connection limits of each listener and of the requests
// in progress.
func (s *Server) limits() connlimit.Limits {
	return connlimit.Limits{Max: s.MaxConns, PerClient: s.MaxConnsPerClient, Refusals: s.Refusals}
}

// listenerKey is the context key of the address of the listener a request
// came on (its label in Refusals, as its connections').
type listenerKey struct{}

// serveHTTP counts the handler calls in progress for Shutdown, and
// answers 503 to a request over the in-flight limits: as many requests in
// progress as MaxConns, MaxConnsPerClient from one client, whatever the
// connections they came on.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var from net.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		from = net.TCPAddrFromAddrPort(ap)
	}
	client, err := s.inflight.Admit(from)
	if err != nil {
		what, ok := r.Context().Value(listenerKey{}).(string)
		if !ok {
			what = "?"
		}
		s.inflight.Refused(client, err, what)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "certkeeper proxy: too many requests in progress from your address; try again", http.StatusServiceUnavailable)
		return
	}
	defer s.inflight.Release(client)
	s.active.Add(1)
	defer s.active.Add(-1)
	if t := orDefault(s.StallTimeout, DefaultStallTimeout); t > 0 {
		var stop func()
		w, stop = watch(w, r, t)
		defer stop()
	}
	s.handler.ServeHTTP(w, r)
}

// waitHandlers waits until no handler call is in progress, or ctx is done.
// It polls, as http.Server.Shutdown does: it runs once per Shutdown, and a
// counter needs no lock on the request path. After http.Server.Shutdown has
// returned no new handler call can start.
func (s *Server) waitHandlers(ctx context.Context) error {
	const maxPoll = 500 * time.Millisecond
	poll := time.Millisecond
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for s.active.Load() != 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		// Double with 10% jitter up to maxPoll, as http.Server does.
		poll = min(poll*2+time.Duration(rand.Int64N(int64(poll)/10+1)), maxPoll)
		timer.Reset(poll)
	}
	return nil
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return DefaultMaxHeaderBytes
}

// orDefault returns d for zero, 0 (no limit in net/http) for a negative v,
// and v otherwise.

func orDefault(v, d time.Duration) time.Duration {
	switch {
	case v == 0:
		return d
	case v < 0:
		return 0
	}
	return v
}

// newErrorLog returns a *log.Logger for net/http's ErrorLog fields that
// writes to the logger returned by logger, at a level chosen from the
// message: these are the only messages net/http does not return as errors.
func newErrorLog(logger func() *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{logger: logger}, "", 0)
}

type errorLogWriter struct {
	logger func() *slog.Logger
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	w.logger().Log(context.Background(), errorLogLevel(msg), msg)
	return len(p), nil
}

// errorLogLevel classifies a net/http or httputil log message.
func errorLogLevel(msg string) slog.Level {
	switch {
	case strings.Contains(msg, "panic"):
		return slog.LevelError
	case strings.HasPrefix(msg, "httputil: ReverseProxy read error during body copy"):
		// The backend's answer cut short: Handler.noteCut says it, with
		// the site, backend and path this line lacks.
		return slog.LevelDebug
	case strings.Contains(msg, "TLS handshake error"),
		strings.Contains(msg, "context canceled"),
		strings.HasPrefix(msg, "http2: server: error reading preface"),
		strings.HasPrefix(msg, "http2: server connection error from"):
		// Clients that give up, scanners, names the certificate source
		// refuses, HTTP/2 clients that break the protocol (a frame flood,
		// a malformed header block): routine on a public port, and one
		// line per connection anyone may open.
		return slog.LevelDebug
	}
	return slog.LevelWarn
}
