package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/internal/upgrade"
)

// The serve/drain/reload loop of the long-running commands (proxy, server,
// alpn-proxy): each starts its servers on a serveLoop, waits in wait
// until it must stop, then drains them.

// shutdowner is a server that stops gracefully: http.Server,
// proxy.Server, alpnproxy.Server.
type shutdowner interface {
	Shutdown(ctx context.Context) error
}

// serveLoop is the servers of a long-running command and what stops them.
type serveLoop struct {
	env *Env
	// up hands the listening sockets to a new process on SIGUSR2; nil
	// leaves SIGUSR2 alone.
	up *upgrade.Upgrader
	// reload is called on SIGHUP; nil leaves SIGHUP alone.
	reload func()

	servers []shutdowner
	errc    chan error // each server's Serve result
}

func newServeLoop(env *Env, up *upgrade.Upgrader, reload func()) *serveLoop {
	serverGC()
	return &serveLoop{env: env, up: up, reload: reload, errc: make(chan error, 4)}
}

// serverGCPercent is the collector's target (GOGC) for the long-running
// servers when the environment sets none. A TLS server's live heap is small
// (a few MB) and each handshake allocates, so at Go's default of 100 it
// collects often: bench/binary measured the proxy at 0.95-0.96 of a bare
// crypto/tls server's CPU per handshake at GOGC=100 and 0.98-1.00 at 200
// (docs/performance.md). The price is a peak heap of up to three times the
// live heap instead of two; GOGC in the environment still wins.
const serverGCPercent = 200

// serverGC sets serverGCPercent unless GOGC is set.
func serverGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(serverGCPercent)
	}
}

// serve runs serve (a server's Serve on its listener) in a goroutine whose
// result wait reports, and drains srv with the others.
func (l *serveLoop) serve(srv shutdowner, serve func() error) {
	l.servers = append(l.servers, srv)
	go func() { l.errc <- serve() }()
}

// serveHTTP listens on addr (named name for upgrades; with tc, over TLS)
// and serves h there with the limits every certkeeper HTTP listener has.
func (l *serveLoop) serveHTTP(name, addr string, h http.Handler, tc *tls.Config) (net.Listener, error) {
	ln, err := l.up.Listen(name, addr)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(l.env.Logger.Handler(), slog.LevelDebug)}
	l.serve(srv, func() error { return srv.Serve(ln) })
	return ln, nil
}

// wait announces readiness (to the process that started an upgrade, or
// systemd) and blocks until ctx ends or an upgrade hands the sockets to a
// new process (failed false: drain next), or a server stops (failed true,
// with its error). SIGHUP calls reload meanwhile.
func (l *serveLoop) wait(ctx context.Context) (failed bool, err error) {
	if l.up != nil {
		if err := l.up.Ready(); err != nil {
			l.env.Logger.Warn("announcing readiness", slog.Any("err", err))
		}
	}
	hup, usr2 := make(chan os.Signal, 1), make(chan os.Signal, 1)
	if l.reload != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	if l.up != nil && len(upgrade.Signals) > 0 {
		signal.Notify(usr2, upgrade.Signals...)
		defer signal.Stop(usr2)
	}
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

// drain stops every server gracefully, waiting up to limit for their open
// connections, and returns their errors.
func (l *serveLoop) drain(limit time.Duration) error {
	if len(l.servers) == 0 {
		return nil
	}
	fmt.Fprintf(l.env.Stderr, "certkeeper: draining connections (at most %d s)\n", int(limit/time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var errs []error
	for _, s := range l.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// handOver starts the binary now at this one's path with the listening
// sockets (SIGUSR2). It reports whether the new process took over, after
// which this one stops accepting and drains; if not, the failure is
// logged and this process keeps serving.
func (l *serveLoop) handOver(ctx context.Context) bool {
	pid, err := l.up.Upgrade(ctx)
	if err != nil {
		l.env.Logger.Error("upgrade failed; the running process keeps serving", slog.Any("err", err))
		fmt.Fprintf(l.env.Stderr, "certkeeper: upgrade failed; still serving: %v\n", err)
		return false
	}
	fmt.Fprintf(l.env.Stderr, "certkeeper: upgraded: process %d serves now\n", pid)
	l.up.StopAccepting()
	return true
}
