package alpnproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy/iptables"
)

// A Runner runs a [Server] the way a daemon does, as `certkeeper
// alpn-proxy start` runs it: it refuses to start while the proxy of its
// pidfile still runs, listens, installs its iptables rules, writes the
// pidfile (so that the pidfile also tells a script the proxy is ready),
// serves until its context ends, then removes the rules, drains the open
// connections and removes the pidfile. [Pidfile.Stop] stops it from
// another process.
//
// It exists so that a Go program can start and stop the proxy as the
// command does; the command only turns flags into a Runner and prints its
// events.
type Runner struct {
	// Server is the proxy to run. It must not be nil.
	Server *Server

	// Addr is the TCP address to listen on ("127.0.0.1:21443", ":21443").
	Addr string

	// Pidfile is written with the process ID once the proxy is ready and
	// removed when it stops. Empty means DefaultPidfile().
	Pidfile Pidfile

	// Drain is how long to wait, once the context ends, for open
	// connections to finish before closing them. Zero means 30 seconds.
	Drain time.Duration

	// Rules, if not nil, are installed while the proxy serves: rules with
	// the tag that an earlier proxy left are removed first, and an empty
	// Spec becomes iptables.DefaultSpec of the port listened on. They are
	// removed before draining, so that new connections go straight to the
	// web server while the proxy finishes the ones it has.
	Rules *iptables.Redirect

	// IgnoreHangup makes Run ignore SIGHUP (the terminal or SSH session
	// that started the process closing; HangupIgnored says so) and have a
	// write to a closed pipe fail rather than raise SIGPIPE (its output
	// piped to a reader that ended): either would kill the process
	// without removing Rules, and port 443 would go to a port nothing
	// listens on (an alpn-proxy trial). For a process that runs one
	// Runner, as alpn-proxy start does.
	IgnoreHangup bool

	// Notify, if set, receives the steps of the run as they happen, for
	// the operator. Unset, the Server's Logger gets the steps an operator
	// must see (Listening at Info, FallbackDown as a warning); set, only
	// Notify does, so that a command printing them shows each once.
	Notify func(Event)
}

// EventKind names a step of [Runner.Run].
type EventKind int

const (
	// InstallingRules: the proxy listens on Event.Addr and its rules are
	// about to be installed.
	InstallingRules EventKind = iota + 1
	// RulesAdded: the rules Event.Spec are in place.
	RulesAdded
	// Listening: the proxy is ready on Event.Addr and the pidfile is
	// written.
	Listening
	// RulesRemoved: the rules are removed, on the way to stopping.
	RulesRemoved
	// Draining: the context ended; Event.Open connections are open and
	// are waited for up to the Runner's Drain.
	Draining
	// Finished: the proxy has stopped; Event.Stats holds its counters.
	Finished
	// FallbackDown: right after Listening, a connection to the Server's
	// FallbackAddr, tried once and closed at once without a byte sent,
	// failed with Event.Err: until something listens there, every
	// connection that is not for acme-tls/1 fails. The proxy runs on
	// (the web server may be starting too).
	FallbackDown
	// HangupIgnored: the process got SIGHUP, and runs on (IgnoreHangup).
	HangupIgnored
)

// An Event is one step of [Runner.Run], for [Runner.Notify]. Only the
// fields its Kind names are set.
type Event struct {
	Kind  EventKind
	Addr  net.Addr
	Spec  []string
	Open  int64
	Stats Stats
	Err   error
}

// RunningError is the error of [Runner.Run] when the process its pidfile
// names still runs.
type RunningError struct {
	PID     int
	Pidfile Pidfile
}

func (e *RunningError) Error() string {
	return fmt.Sprintf("already running as process %d (pidfile %s)", e.PID, e.Pidfile)
}

// ListenError is the error of [Runner.Run] when it cannot listen on Addr
// (a port in use, a privileged port): a program can then say which of its
// settings gives the address.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string { return fmt.Sprintf("listening on %s: %v", e.Addr, e.Err) }

func (e *ListenError) Unwrap() error { return e.Err }

// rulesTimeout bounds adding or removing the rules.
const rulesTimeout = 30 * time.Second

func (r *Runner) pidfile() Pidfile {
	if r.Pidfile == "" {
		return DefaultPidfile()
	}
	return r.Pidfile
}

func (r *Runner) drain() time.Duration {
	if r.Drain == 0 {
		return 30 * time.Second
	}
	return r.Drain
}

func (r *Runner) notify(e Event) {
	if r.Notify != nil {
		r.Notify(e)
	}
}

// Run serves until ctx ends (or the server fails), then drains and
// stops, returning what went wrong on the way: an error removing the
// rules, or connections still open after Drain (they are closed), joined.
func (r *Runner) Run(ctx context.Context) (err error) {
	srv, pidfile := r.Server, r.pidfile()
	if pid, err := pidfile.Read(); err == nil && pidfile.Running(pid) {
		return &RunningError{PID: pid, Pidfile: pidfile}
	}
	ln, err := net.Listen("tcp", r.Addr)
	if err != nil {
		return &ListenError{Addr: r.Addr, Err: err}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	abort := func(err error) error {
		srv.Close()
		<-errc
		return err
	}
	if r.IgnoreHangup {
		defer r.ignoreHangup(ctx)()
	}
	rules := r.Rules
	if rules != nil {
		if err := r.installRules(ctx, ln.Addr()); err != nil {
			return abort(err)
		}
		// This deferred call is for the error returns; the rules are
		// removed before draining otherwise.
		defer func() {
			if rules != nil {
				err = errors.Join(err, r.removeRules())
			}
		}()
	}
	if err := pidfile.Write(os.Getpid()); err != nil {
		return abort(err)
	}
	defer func() {
		if err := pidfile.Remove(os.Getpid()); err != nil {
			srv.logger().Warn("removing pidfile failed", slog.String("pidfile", string(pidfile)), slog.Any("err", err))
		}
	}()
	if r.Notify == nil {
		srv.logger().Info("alpn-proxy listening", slog.String("addr", ln.Addr().String()),
			slog.String("alpn", srv.ALPNAddr), slog.String("fallback", srv.FallbackAddr))
	}
	r.notify(Event{Kind: Listening, Addr: ln.Addr()})
	if err := r.probeFallback(ctx); err != nil {
		if r.Notify == nil {
			srv.logger().Warn("nothing answers on the fallback address", slog.String("fallback", srv.FallbackAddr), slog.Any("err", err))
		}
		r.notify(Event{Kind: FallbackDown, Err: err})
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	if rules != nil {
		err = r.removeRules()
		rules = nil // removed: the deferred removal has nothing to do
	}
	return errors.Join(err, r.shutdown(errc))
}

// probeTimeout bounds the one connection to FallbackAddr at start.
const probeTimeout = 3 * time.Second

// probeFallback connects to the fallback address once and closes the
// connection without sending any data. With ProxyProtocol it first sends a
// PROXY protocol v2 header with the LOCAL command, the protocol's form for
// health checks: a web server expecting a header (nginx: listen ...
// proxy_protocol) logs a connection closed without one as an error
// ("broken header"), and one with it as a client that left.
func (r *Runner) probeFallback(ctx context.Context) error {
	d := net.Dialer{Timeout: min(r.Server.dialTimeout(), probeTimeout)}
	// Not cancelled by a stop: a dial cut short may leave the web server
	// a connection that closes without the PROXY header, which nginx logs
	// as an error. The dial timeout bounds it.
	c, err := d.DialContext(context.WithoutCancel(ctx), "tcp", r.Server.FallbackAddr)
	if err != nil {
		return err
	}
	if r.Server.ProxyProtocol {
		_ = c.SetWriteDeadline(time.Now().Add(probeTimeout))
		_, _ = c.Write(proxyHeaderLocal())
	}
	return c.Close()
}

// shutdown drains the server and waits for Serve to return.
func (r *Runner) shutdown(errc <-chan error) error {
	srv, drain := r.Server, r.drain()
	r.notify(Event{Kind: Draining, Open: srv.Stats().Active})
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := srv.Shutdown(ctx)
	<-errc
	r.notify(Event{Kind: Finished, Stats: srv.Stats()})
	if err != nil {
		return fmt.Errorf("draining: connections still open after %s were closed: %w", drain, err)
	}
	return nil
}

// installRules removes the tagged rules an earlier proxy left and adds
// r.Rules, defaulting its spec to a redirect of port 443 to addr's port.
// On failure no tagged rule is left.
func (r *Runner) installRules(ctx context.Context, addr net.Addr) error {
	if tcp, ok := addr.(*net.TCPAddr); ok && len(r.Rules.Spec) == 0 {
		r.Rules.Spec = iptables.DefaultSpec(tcp.Port)
	} else if to := iptables.RedirectPort(r.Rules.Spec); ok && to != "" && to != strconv.Itoa(tcp.Port) {
		// A spec of its own (acme-alpn-proxy's ends in --to-port 21443)
		// with another --listen: port 443 would go nowhere (an alpn-proxy trial).
		return fmt.Errorf("the iptables rule spec redirects to port %s, but the proxy listens on port %d: listen on port %s, or redirect to port %d",
			to, tcp.Port, to, tcp.Port)
	}
	r.notify(Event{Kind: InstallingRules, Addr: addr})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rulesTimeout)
	defer cancel()
	if err := otherProxyRules(ctx, addr); err != nil {
		return err
	}
	if err := r.Rules.Install(ctx); err != nil {
		return fmt.Errorf("adding iptables rules: %w", err)
	}
	r.notify(Event{Kind: RulesAdded, Spec: r.Rules.Spec})
	return nil
}

// otherProxyRules refuses to replace the tagged rules of another proxy
// that runs: Install removes tagged rules (a killed proxy's), and a second
// alpn-proxy started with another pidfile took a running one's away, which
// then served nothing while its status said running (an alpn-proxy
// trial). A rule is taken as a running proxy's when something listens on
// the port it redirects to, other than addr's.
func otherProxyRules(ctx context.Context, addr net.Addr) error {
	tcp, ok := addr.(*net.TCPAddr)
	rules, _ := iptables.Tagged(ctx)
	for _, rule := range rules {
		port := iptables.RedirectPort(strings.Fields(rule))
		if !ok || port == "" || port == strconv.Itoa(tcp.Port) {
			continue
		}
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		if c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port)); err == nil {
			c.Close()
			return fmt.Errorf("another alpn-proxy runs, with iptables rules redirecting to port %s (which answers): stop it first "+
				"(certkeeper alpn-proxy stop, with its pidfile), or run this one without iptables rules: %s", port, rule)
		}
	}
	return nil
}

// removeRules removes the tagged rules, on a context of its own: the one
// the proxy ran on has ended by now.
func (r *Runner) removeRules() error {
	ctx, cancel := context.WithTimeout(context.Background(), rulesTimeout)
	defer cancel()
	if err := r.Rules.Remove(ctx); err != nil {
		return fmt.Errorf("removing iptables rules: %w", err)
	}
	r.notify(Event{Kind: RulesRemoved})
	return nil
}

// ignoreHangup catches SIGHUP and SIGPIPE until ctx ends or the returned
// func is called (IgnoreHangup).
func (r *Runner) ignoreHangup(ctx context.Context) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case s := <-sigs:
				if s == syscall.SIGHUP {
					r.notify(Event{Kind: HangupIgnored})
				}
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}
