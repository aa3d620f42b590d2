// Package serveloop runs the servers of a long-running certkeeper command
// (proxy, server, alpn-proxy) until it must stop, then drains them: it
// announces readiness (to an upgrading parent or systemd), reloads on
// SIGHUP, hands the listening sockets to a new binary on SIGUSR2
// (package internal/upgrade), and stops every server gracefully within a
// bound when the command's context ends or a server fails.
//
// It exists so that each command starts its servers on a Loop and waits,
// rather than repeating the signal handling and the drain. It does not
// build the servers or choose their addresses, and it holds nothing a
// command decides: the reload is the caller's function.
package serveloop

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/proxyprotocol"
	"github.com/certkeeper/certkeeper/internal/upgrade"
	"github.com/certkeeper/certkeeper/proxy"
)

// Shutdowner is a server that stops gracefully: http.Server,
// proxy.Server, alpnproxy.Server.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Loop is the servers of a long-running command and what stops them.
// Make one with New.
type Loop struct {
	logger *slog.Logger
	// notes receives the lines an operator reads on stderr (draining,
	// upgraded).
	notes io.Writer
	// up hands the listening sockets to a new process on SIGUSR2; nil
	// leaves SIGUSR2 alone.
	up *upgrade.Upgrader
	// reload is called on SIGHUP; nil leaves SIGHUP alone.
	reload func()
	// Limits bound the connections of each listener ListenHTTP opens
	// (package connlimit; the zero Limits are its defaults). Set it
	// before the first ListenHTTP.
	Limits connlimit.Limits
	// ProxyProtocolFrom are the addresses of TCP load balancers whose
	// connections to a ListenHTTP listener start with a PROXY protocol
	// header, which must (package proxyprotocol); nil reads none.
	ProxyProtocolFrom []netip.Prefix

	servers []Shutdowner
	errc    chan error // each server's Serve result
	// hup and usr2 receive SIGHUP and the upgrade signals from New on:
	// one sent between "listening" and Wait waits for Wait, where Go
	// would otherwise have caught and dropped it.
	hup, usr2 chan os.Signal
}

// New returns a Loop that logs to logger, writes the operator's notes
// ("certkeeper: draining connections ...") to notes, hands its sockets
// over with up (nil: no upgrades) and calls reload on SIGHUP (nil: SIGHUP
// is left alone). It sets the collector's target for a server (ServerGC).
func New(logger *slog.Logger, notes io.Writer, up *upgrade.Upgrader, reload func()) *Loop {
	ServerGC()
	l := &Loop{logger: logger, notes: notes, up: up, reload: reload, errc: make(chan error, 4),
		hup: make(chan os.Signal, 1), usr2: make(chan os.Signal, 1)}
	if reload != nil {
		signal.Notify(l.hup, syscall.SIGHUP)
	}
	if up != nil && len(upgrade.Signals) > 0 {
		signal.Notify(l.usr2, upgrade.Signals...)
	}
	return l
}

// stopSignals stops the delivery of the Loop's signals (after Wait, and
// at Drain for a Loop that never waited).
func (l *Loop) stopSignals() {
	signal.Stop(l.hup)
	signal.Stop(l.usr2)
}

// ServerGCPercent is the collector's target (GOGC) for the long-running
// servers when the environment sets none. A TLS server's live heap is small
// (a few MB) and each handshake allocates, so at Go's default of 100 it
// collects often: bench/binary measured the proxy at 0.95-0.96 of a bare
// crypto/tls server's CPU per handshake at GOGC=100 and 0.98-1.00 at 200
// (docs/performance.md). The price is a peak heap of up to three times the
// live heap instead of two; GOGC in the environment still wins.
const ServerGCPercent = 200

// ServerGC sets ServerGCPercent unless GOGC is set.
func ServerGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(ServerGCPercent)
	}
}

// Serve runs serve (a server's Serve on its listener) in a goroutine whose
// result Wait reports (or Results), and drains srv with the others.
func (l *Loop) Serve(srv Shutdowner, serve func() error) {
	l.servers = append(l.servers, srv)
	go func() { l.errc <- serve() }()
}

// Results are the results of the servers' Serve, for a caller that stops
// a server itself and waits for its Serve to return.
func (l *Loop) Results() <-chan error { return l.errc }

// ListenHTTP listens on addr (named name for upgrades; with tc, over TLS)
// and serves h there with the limits every certkeeper HTTP listener has,
// and l.Limits, reading the PROXY header of connections from
// l.ProxyProtocolFrom.
func (l *Loop) ListenHTTP(name, addr string, h http.Handler, tc *tls.Config) (net.Listener, error) {
	raw, err := l.up.Listen(name, addr)
	if err != nil {
		return nil, err
	}
	ln := proxyprotocol.ListenLimited(raw, l.Limits, l.ProxyProtocolFrom, l.logger)
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(l.logger.Handler(), slog.LevelDebug)}
	l.Serve(srv, func() error { return srv.Serve(ln) })
	return ln, nil
}

// Wait announces readiness (to the process that started an upgrade, or
// systemd) and blocks until ctx ends or an upgrade hands the sockets to a
// new process (failed false: drain next), or a server stops (failed true,
// with its error). SIGHUP calls reload meanwhile.
func (l *Loop) Wait(ctx context.Context) (failed bool, err error) {
	if l.up != nil {
		if err := l.up.Ready(); err != nil {
			l.logger.Warn("announcing readiness", slog.Any("err", err))
		}
	}
	defer l.stopSignals()
	hup, usr2 := l.hup, l.usr2
	for {
		select {
		case err := <-l.errc:
			return true, err
		case <-hup:
			l.reload()
		case <-usr2:
			if l.handOver(ctx) {
				return false, nil
			}
		case <-ctx.Done():
			return false, nil
		}
	}
}

// Drain stops every server gracefully, waiting up to limit for their open
// connections. Connections still open at the limit are waiting for
// something (a request for a certificate being issued): Drain says so on
// the notes, calls abandon (if not nil) to make that give up, gives the
// handlers abandonGrace to answer (a 503 rather than a cut connection),
// and closes what is left. A drain that reaches its limit is still a
// stop that was asked for, not a failure: Drain returns an error only
// when a server fails to stop.
func (l *Loop) Drain(limit time.Duration, abandon func()) error {
	l.stopSignals()
	if len(l.servers) == 0 {
		return nil
	}
	fmt.Fprintf(l.notes, "certkeeper: draining connections (at most %d s)\n", int(limit/time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	errs := l.shutdown(ctx)
	if ctx.Err() == nil {
		fmt.Fprintf(l.notes, "certkeeper: connections drained; stopping\n")
		return errors.Join(errs...)
	}
	fmt.Fprintf(l.notes, "certkeeper: drain limit (%d s) reached with connections open: abandoning what they wait for (issuances in flight) and closing them%s\n",
		int(limit/time.Second), cutSaid(errs))
	if abandon != nil {
		abandon()
	}
	grace, cancel := context.WithTimeout(context.Background(), abandonGrace)
	defer cancel()
	for i, err := range l.shutdown(grace) {
		if c, ok := l.servers[i].(io.Closer); ok && err != nil {
			_ = c.Close()
		}
	}
	return nil
}

// cutSaid is what the servers that reached the drain limit say they cut
// (a proxy.Server's DrainError), as " (requests … cut …: N)" after the
// drain line; "" when none says.
func cutSaid(errs []error) string {
	n := 0
	for _, err := range errs {
		if d, ok := errors.AsType[*proxy.DrainError](err); ok {
			n += d.Cut
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (requests in progress cut, WebSockets included: %d)", n)
}

// Abort closes the servers started so far at once, without the drain's
// notes: for a start that failed (a port in use) before anything was
// served, whose log should hold that failure alone (an ops trial read
// "draining connections" first, and looked for a stop).
func (l *Loop) Abort() {
	l.stopSignals()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i, err := range l.shutdown(ctx) {
		if c, ok := l.servers[i].(io.Closer); ok && err != nil {
			_ = c.Close()
		}
	}
}

// abandonGrace is how long the handlers of a drain that reached its limit
// get to answer once what they waited for is abandoned.
const abandonGrace = 2 * time.Second

// shutdown shuts every server down at once, each until ctx ends, and
// returns their errors, by server.
func (l *Loop) shutdown(ctx context.Context) []error {
	errs := make([]error, len(l.servers))
	var wg sync.WaitGroup
	for i, s := range l.servers {
		wg.Go(func() { errs[i] = s.Shutdown(ctx) })
	}
	wg.Wait()
	return errs
}

// handOver starts the binary now at this one's path with the listening
// sockets (SIGUSR2). It reports whether the new process took over, after
// which this one stops accepting and drains; if not, the failure is
// logged and this process keeps serving.
func (l *Loop) handOver(ctx context.Context) bool {
	pid, err := l.up.Upgrade(ctx)
	if err != nil {
		l.logger.Error("upgrade failed; the running process keeps serving", slog.Any("err", err))
		fmt.Fprintf(l.notes, "certkeeper: upgrade failed; still serving: %v\n", err)
		return false
	}
	fmt.Fprintf(l.notes, "certkeeper: upgraded: process %d serves now\n", pid)
	l.up.StopAccepting()
	return true
}
