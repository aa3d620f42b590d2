package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
	"github.com/certkeeper/certkeeper/alpnproxy/iptables"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/serveloop"
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
			fs.Var((*cmdline.Duration)(&drain), "drain", "how long (`DURATION`) to wait for open connections on SIGINT or SIGTERM before closing them")
			fs.IntVar(&maxConns, "max-conns", 10000, "`N` connections handled at once at most; one more is closed at once")
			idleTimeout = 10 * time.Minute
			fs.Var((*cmdline.Duration)(&idleTimeout), "idle-timeout", "close a spliced connection with no bytes in either direction for this `DURATION` (0: never)")
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

// runALPNProxy runs srv as alpn-proxy start does (alpnproxy.Runner) and
// prints its steps (Runner.Describe).
func runALPNProxy(ctx context.Context, env *Env, srv *alpnproxy.Server, listen, pidfile string, drain time.Duration, rules *iptables.Redirect) error {
	serveloop.ServerGC()
	r := &alpnproxy.Runner{Server: srv, Addr: listen, Pidfile: alpnproxy.Pidfile(pidfile), Drain: drain, Rules: rules}
	r.Notify = func(e alpnproxy.Event) {
		if msg := r.Describe(e); msg != "" {
			fmt.Fprintf(env.Stderr, "certkeeper: %s\n", msg)
		}
	}
	err := r.Run(ctx)
	if _, ok := errors.AsType[*alpnproxy.RunningError](err); ok {
		return fmt.Errorf("%w: stop it with certkeeper alpn-proxy stop", err)
	}
	return err
}

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
			fs.Var((*cmdline.Duration)(&timeout), "timeout", "how long (`DURATION`) to wait for the proxy to exit")
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

// stopALPNProxy signals the process in pidfile, waits for it to exit and
// says what it found (alpnproxy.Pidfile.Halt).
func stopALPNProxy(ctx context.Context, env *Env, pidfile string, timeout time.Duration) error {
	msg, err := alpnproxy.Pidfile(pidfile).Halt(ctx, timeout, env.Logger)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, msg)
	return nil
}

// defaultPidfile is where start and stop meet when --pidfile is not given:
// $ACME_ALPN_PROXY_PIDFILE, else alpnproxy.DefaultPidfile.
func defaultPidfile() string {
	if p := os.Getenv(pidfileEnv); p != "" {
		return p
	}
	return string(alpnproxy.DefaultPidfile())
}
