package cli

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/certkeeper/certkeeper/internal/serveloop"
	"github.com/certkeeper/certkeeper/internal/upgrade"
)

// serveLoop is the serve/drain/reload loop of the long-running commands
// (proxy, server, alpn-proxy), package internal/serveloop, with the
// command's Env and Upgrader at hand: each starts its servers on it, waits
// in wait until it must stop, then drains them.
type serveLoop struct {
	*serveloop.Loop
	env  *Env
	up   *upgrade.Upgrader
	errc <-chan error // each server's Serve result
}

func newServeLoop(env *Env, up *upgrade.Upgrader, reload func()) *serveLoop {
	l := serveloop.New(env.Logger, env.Stderr, up, reload)
	return &serveLoop{Loop: l, env: env, up: up, errc: l.Results()}
}

// The methods the commands call (serveloop.Loop's).

func (l *serveLoop) serve(srv serveloop.Shutdowner, serve func() error) { l.Serve(srv, serve) }

func (l *serveLoop) serveHTTP(name, addr string, h http.Handler, tc *tls.Config) (net.Listener, error) {
	return l.ListenHTTP(name, addr, h, tc)
}

func (l *serveLoop) wait(ctx context.Context) (failed bool, err error) { return l.Wait(ctx) }

func (l *serveLoop) drain(limit time.Duration) error { return l.Drain(limit) }
