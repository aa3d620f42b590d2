package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
	"github.com/certkeeper/certkeeper/alpnproxy/iptables"
	"github.com/certkeeper/certkeeper/internal/atomicfile"
)

// The environment variables of letsdebug/acme-alpn-proxy that alpn-proxy
// start honours as defaults for its flags, so scripts written for it keep
// working.
const (
	rulespecEnv  = "ACME_ALPN_PROXY_RULESPEC"
	disableV6Env = "ACME_ALPN_PROXY_DISABLEV6"
)

// envDisablesV6 reports whether $ACME_ALPN_PROXY_DISABLEV6 asks for no
// ip6tables rules (the original checks for "y"; yes, 1 and true also do).
func envDisablesV6() bool {
	switch strings.ToLower(os.Getenv(disableV6Env)) {
	case "y", "yes", "1", "true":
		return true
	}
	return false
}

// pidfileEnv names the environment variable that sets the default pidfile,
// as in letsdebug/acme-alpn-proxy, so scripts written for it keep working.
const pidfileEnv = "ACME_ALPN_PROXY_PIDFILE"

func alpnProxyCmd() *Command {
	return &Command{
		UsageLine: "certkeeper alpn-proxy COMMAND [flags]",
		Short:     "answer tls-alpn-01 on a port a web server owns, without stopping it",
		Long: `alpn-proxy sits in front of a TLS server and sends the connections whose ClientHello offers
the ALPN protocol acme-tls/1 (an ACME CA validating tls-alpn-01) to an ACME client, and every
other connection, untouched, to the TLS server. Run it around a certificate issue:

	certkeeper alpn-proxy start --fallback 127.0.0.1:443 &
	certkeeper cert issue --challenge tls-alpn-01 --tls-alpn-addr 127.0.0.1:31443 -d a.example
	certkeeper alpn-proxy stop

Port 443 must reach the proxy's --listen address: on Linux, start --iptables adds the
redirect rules and removes them when the proxy stops.`,
		Commands: []*Command{alpnProxyStartCmd(), alpnProxyStopCmd()},
	}
}

func alpnProxyStartCmd() *Command {
	var listen, alpnAddr, fallback, pidfile, rulespec string
	var proxyProtocol, useIPTables, iptablesOutput, noIPv6 bool
	var drain, idleTimeout time.Duration
	var maxConns int
	var flags *flag.FlagSet
	return &Command{
		UsageLine: "certkeeper alpn-proxy start [flags]",
		Short:     "run the proxy until SIGINT or SIGTERM",
		Long: `Start listens on --listen and routes each connection by its first TLS record: a ClientHello
offering acme-tls/1 goes to --alpn, everything else to --fallback, with the bytes already read
replayed. A first packet that is not a complete ClientHello within 5 seconds (not TLS,
truncated, oversized, or nothing sent) goes to --fallback as it is, so the web server sees
what it would have seen without the proxy.

At most --max-conns connections are handled at once; one more is closed at once (reset) before
anything is read from it. A spliced connection on which no byte moves in either direction for
--idle-timeout is closed; --idle-timeout 0 never closes one.

Start writes --pidfile once it listens (and its --iptables rules are in place) and runs until
SIGINT or SIGTERM (what "alpn-proxy stop" sends); it then accepts nothing new, waits up to
--drain for open connections to finish, closes the rest, removes the pidfile and exits.

	certkeeper alpn-proxy start --listen 127.0.0.1:21443 --fallback 127.0.0.1:8443 &
	certkeeper alpn-proxy start --proxy-protocol   # nginx: listen 443 ssl proxy_protocol;

With --iptables (Linux, root), once it listens, start adds a nat PREROUTING rule that redirects
incoming TCP port 443 to the --listen port, with iptables and ip6tables, each rule tagged with
the comment certkeeper-alpn-proxy; it removes them on SIGINT or SIGTERM before draining. Rules
with the tag that a killed proxy left behind are removed at the next start. PREROUTING sees
connections from other hosts only, which REDIRECT sends to the receiving interface's address:
listen on all addresses (--listen :21443), not on 127.0.0.1. --iptables-output adds the rule to
the OUTPUT chain too, for clients on this host, except for sockets of the proxy's user (-m owner
! --uid-owner), so that the proxy's own connection to --fallback is not sent back to it; clients
running as that user (root) are not redirected.

	certkeeper alpn-proxy start --iptables --listen :21443 &`,
		Flags: func(fs *flag.FlagSet) {
			flags = fs
			fs.StringVar(&listen, "listen", "127.0.0.1:21443", "`ADDR` to accept connections on")
			fs.StringVar(&alpnAddr, "alpn", "127.0.0.1:31443", "`ADDR` of the ACME client answering tls-alpn-01 (cert issue --tls-alpn-addr)")
			fs.StringVar(&fallback, "fallback", "127.0.0.1:443", "`ADDR` of the TLS server that gets every other connection")
			fs.StringVar(&pidfile, "pidfile", "", "`FILE` holding the proxy's process ID (default $"+pidfileEnv+",\nelse certkeeper-alpn-proxy.pid in /run for root, $XDG_RUNTIME_DIR, or the temporary directory)")
			fs.BoolVar(&proxyProtocol, "proxy-protocol", false, "start each --fallback connection with a PROXY protocol v2 header carrying the client's address")
			drain = 30 * time.Second
			fs.Var((*durationFlag)(&drain), "drain", "how long (`DURATION`) to wait for open connections on SIGINT or SIGTERM before closing them")
			fs.IntVar(&maxConns, "max-conns", 10000, "`N` connections handled at once at most; one more is closed at once")
			idleTimeout = 10 * time.Minute
			fs.Var((*durationFlag)(&idleTimeout), "idle-timeout", "close a spliced connection with no bytes in either direction for this `DURATION` (0: never)")
			fs.BoolVar(&useIPTables, "iptables", false, "redirect incoming TCP port 443 to --listen with iptables rules while running (Linux, root)")
			fs.StringVar(&rulespec, "rulespec", "", "iptables `SPEC` after -t nat -A PREROUTING (default $"+rulespecEnv+",\nelse \""+strings.Join(iptables.DefaultSpec(21443), " ")+"\"\nwith the --listen port); the tag comment is appended when missing")
			fs.BoolVar(&iptablesOutput, "iptables-output", false, "also redirect connections from this host (nat OUTPUT), except the proxy user's own")
			fs.BoolVar(&noIPv6, "no-ipv6", false, "add no ip6tables rules (default true when $"+disableV6Env+" is y)")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("alpn-proxy start takes no arguments")
			}
			for _, a := range []struct{ flag, addr string }{{"--alpn", alpnAddr}, {"--fallback", fallback}} {
				if _, _, err := net.SplitHostPort(a.addr); err != nil {
					return usagef("%s %q: want HOST:PORT", a.flag, a.addr)
				}
			}
			if drain <= 0 {
				return usagef("--drain %s: must be positive", drain)
			}
			if maxConns <= 0 {
				return usagef("--max-conns %d: must be at least 1 (raise it rather than remove the limit)", maxConns)
			}
			if idleTimeout < 0 {
				return usagef("--idle-timeout %s: must not be negative (0 turns it off)", idleTimeout)
			}
			if idleTimeout == 0 {
				idleTimeout = -1 // alpnproxy.Server: negative is off, zero its default
			}
			if pidfile == "" {
				pidfile = defaultPidfile()
			}
			var rules *iptables.Redirect
			if useIPTables {
				if !flagSet(flags, "no-ipv6") {
					noIPv6 = envDisablesV6()
				}
				if rulespec == "" {
					rulespec = os.Getenv(rulespecEnv)
				}
				rules = &iptables.Redirect{Spec: strings.Fields(rulespec), Output: iptablesOutput, ExceptUID: os.Geteuid(), IPv6: !noIPv6}
				if err := rules.Check(); err != nil {
					return fmt.Errorf("--iptables: %w", err)
				}
			} else if rulespec != "" || iptablesOutput {
				return usagef("--rulespec and --iptables-output need --iptables")
			}
			srv := &alpnproxy.Server{ALPNAddr: alpnAddr, FallbackAddr: fallback, ProxyProtocol: proxyProtocol,
				MaxConns: maxConns, IdleTimeout: idleTimeout, Logger: env.Logger}
			return runALPNProxy(ctx, env, srv, listen, pidfile, drain, rules)
		},
	}
}

// runALPNProxy serves srv on listen until ctx ends. Unless rules is nil,
// the redirect rules are installed while it serves (an empty spec means the
// default for the port listened on). The pidfile is written once the proxy
// listens and its rules are in place, so that it also tells a script the
// proxy is ready.
func runALPNProxy(ctx context.Context, env *Env, srv *alpnproxy.Server, listen, pidfile string, drain time.Duration, rules *iptables.Redirect) (err error) {
	if pid, err := readPidfile(pidfile); err == nil && processAlive(pid) {
		return fmt.Errorf("already running as process %d (pidfile %s): stop it with certkeeper alpn-proxy stop", pid, pidfile)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	loop := newServeLoop(env, nil, nil) // no upgrades, no reload
	loop.serve(srv, func() error { return srv.Serve(ln) })
	abort := func(err error) error {
		srv.Close()
		<-loop.errc
		return err
	}
	if rules != nil {
		if err := installRules(ctx, env, rules, ln.Addr()); err != nil {
			return abort(err)
		}
		// Removed before draining, so that new connections go straight to
		// the web server while the proxy finishes the ones it has; this
		// deferred call is for the error returns.
		defer func() {
			if rules == nil {
				return
			}
			if rerr := removeRules(env, rules); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}()
	}
	if err := writePidfile(pidfile, os.Getpid()); err != nil {
		return abort(err)
	}
	defer removePidfile(env, pidfile, os.Getpid())
	env.Logger.Info("alpn-proxy listening", slog.String("addr", ln.Addr().String()),
		slog.String("alpn", srv.ALPNAddr), slog.String("fallback", srv.FallbackAddr))
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy listening on %s: acme-tls/1 to %s, the rest to %s (pidfile %s)\n",
		ln.Addr(), srv.ALPNAddr, srv.FallbackAddr, pidfile)
	if failed, err := loop.wait(ctx); failed {
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	}
	if rules != nil {
		if rerr := removeRules(env, rules); rerr != nil {
			err = rerr
		}
		rules = nil // removed: the deferred removal has nothing to do
	}
	open := srv.Stats().Active
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy stopping: waiting up to %s for %d open connections\n", drain, open)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	serr := srv.Shutdown(dctx)
	<-loop.errc
	st := srv.Stats()
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy stopped: %d connections, %d to --alpn, %d to --fallback, %d closed over --max-conns, %d closed idle\n",
		st.Accepted, st.ALPN, st.Fallback, st.Rejected, st.IdleClosed)
	if serr != nil {
		serr = fmt.Errorf("draining: connections still open after %s were closed: %w", drain, serr)
	}
	return errors.Join(err, serr)
}

// installRules removes the tagged rules an earlier proxy left and adds
// rules, defaulting its spec to a redirect of port 443 to addr's port. On
// failure no tagged rule is left.
func installRules(ctx context.Context, env *Env, rules *iptables.Redirect, addr net.Addr) error {
	tcp, _ := addr.(*net.TCPAddr)
	if len(rules.Spec) == 0 && tcp != nil {
		rules.Spec = iptables.DefaultSpec(tcp.Port)
	}
	if tcp != nil && tcp.IP.IsLoopback() {
		fmt.Fprintf(env.Stderr, "certkeeper: note: --listen %s is a loopback address: REDIRECT in PREROUTING sends connections from other hosts to the receiving interface's address, which it does not listen on; use --listen :%d\n", addr, tcp.Port)
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), iptablesTimeout)
	defer cancel()
	if err := rules.Install(ictx); err != nil {
		return fmt.Errorf("adding iptables rules: %w", err)
	}
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy added iptables rules: %s\n", strings.Join(rules.Spec, " "))
	return nil
}

// removeRules removes the tagged rules, on a context of its own: the one
// the proxy ran on has ended by now.
func removeRules(env *Env, rules *iptables.Redirect) error {
	ctx, cancel := context.WithTimeout(context.Background(), iptablesTimeout)
	defer cancel()
	if err := rules.Remove(ctx); err != nil {
		return fmt.Errorf("removing iptables rules: %w", err)
	}
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy removed its iptables rules\n")
	return nil
}

// iptablesTimeout bounds adding or removing the rules.
const iptablesTimeout = 30 * time.Second

// flagSet reports whether the flag name was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func alpnProxyStopCmd() *Command {
	var pidfile string
	var timeout time.Duration
	return &Command{
		UsageLine: "certkeeper alpn-proxy stop [flags]",
		Short:     "stop a running proxy and wait until its connections are done",
		Long: `Stop sends SIGTERM to the process in --pidfile and waits, up to --timeout, until it has drained
its open connections, removed its pidfile and exited. A missing pidfile, or one left by a
process that no longer runs, means there is nothing to stop: the exit status is 0.

	certkeeper alpn-proxy stop
	certkeeper alpn-proxy stop --pidfile /run/certkeeper-alpn-proxy.pid --timeout 1m`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pidfile, "pidfile", "", "`FILE` that alpn-proxy start wrote (default as for start)")
			timeout = 45 * time.Second
			fs.Var((*durationFlag)(&timeout), "timeout", "how long (`DURATION`) to wait for the proxy to exit")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("alpn-proxy stop takes no arguments")
			}
			if pidfile == "" {
				pidfile = defaultPidfile()
			}
			return stopALPNProxy(ctx, env, pidfile, timeout)
		},
	}
}

// stopALPNProxy signals the process in pidfile and waits for it to exit.
func stopALPNProxy(ctx context.Context, env *Env, pidfile string, timeout time.Duration) error {
	pid, err := readPidfile(pidfile)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(env.Stdout, "alpn-proxy is not running (no %s)\n", pidfile)
		return nil
	}
	if err != nil {
		return err
	}
	p, err := os.FindProcess(pid)
	if err == nil {
		err = p.Signal(syscall.SIGTERM)
	}
	if errors.Is(err, os.ErrProcessDone) {
		removeStale(env, pidfile, pid)
		return nil
	}
	if err != nil {
		return fmt.Errorf("signalling process %d from %s: %w", pid, pidfile, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !processAlive(pid) {
			if _, err := os.Stat(pidfile); err == nil {
				removeStale(env, pidfile, pid)
				return nil
			}
			fmt.Fprintf(env.Stdout, "alpn-proxy stopped (process %d)\n", pid)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d (pidfile %s) still running after %s: %w", pid, pidfile, timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// removeStale removes a pidfile whose process no longer runs.
func removeStale(env *Env, pidfile string, pid int) {
	removePidfile(env, pidfile, pid)
	fmt.Fprintf(env.Stdout, "alpn-proxy is not running (process %d is gone; removed %s)\n", pid, pidfile)
}

// defaultPidfile is where start and stop meet when --pidfile is not given.
func defaultPidfile() string {
	const name = "certkeeper-alpn-proxy.pid"
	if p := os.Getenv(pidfileEnv); p != "" {
		return p
	}
	if os.Geteuid() == 0 {
		return filepath.Join("/run", name)
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, name)
	}
	// The temporary directory is shared: the user ID keeps users apart.
	return filepath.Join(os.TempDir(), fmt.Sprintf("certkeeper-alpn-proxy-%d.pid", os.Getuid()))
}

// writePidfile writes pid to path atomically: stop never reads half a
// number.
func writePidfile(path string, pid int) error {
	if err := atomicfile.WriteFile(path, fmt.Appendf(nil, "%d\n", pid), 0o644); err != nil {
		return fmt.Errorf("writing pidfile %s: %w", path, err)
	}
	return nil
}

// readPidfile returns the process ID in path; a missing file wraps
// fs.ErrNotExist.
func readPidfile(path string) (int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("reading pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s holds %q, not a process ID", path, data)
	}
	return pid, nil
}

// removePidfile removes path if it still names pid: a newer proxy's
// pidfile is left alone.
func removePidfile(env *Env, path string, pid int) {
	if got, err := readPidfile(path); err != nil || got != pid {
		return
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		env.Logger.Warn("removing pidfile failed", slog.String("pidfile", path), slog.Any("err", err))
	}
}

// processAlive reports whether process pid exists (signal 0 checks without
// sending anything; EPERM means it exists but belongs to another user).
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}
