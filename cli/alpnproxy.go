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

func alpnProxyCmd() *Command {
	return &Command{
		UsageLine: "certkeeper alpn-proxy COMMAND [flags]",
		Short:     "answer tls-alpn-01 on a port a web server owns, without stopping it",
		Commands:  []*Command{alpnProxyStartCmd(), alpnProxyStopCmd(), alpnProxyStatusCmd()},
	}
}

// alpnStartFlags are the flags of alpn-proxy start.
type alpnStartFlags struct {
	listen         string        `flag:"listen" arg:"ADDR" default:"127.0.0.1:21443" help:"ADDR to accept connections on (with --iptables, :21443: every address, as REDIRECT\ndelivers to the address of the interface a connection came in on)"`
	alpnAddr       string        `flag:"alpn" arg:"ADDR" default:"127.0.0.1:31443" help:"ADDR of the ACME client answering tls-alpn-01 (cert issue --tls-alpn-addr)"`
	fallback       string        `flag:"fallback" arg:"ADDR" default:"127.0.0.1:443" help:"ADDR of the TLS server that gets every other connection"`
	pidfile        string        `flag:"pidfile" arg:"FILE" help:"FILE holding the proxy's process ID (default $ACME_ALPN_PROXY_PIDFILE,\nelse certkeeper-alpn-proxy.pid in /run for root, $XDG_RUNTIME_DIR, or the temporary directory)"`
	proxyProtocol  bool          `flag:"proxy-protocol" help:"start each --fallback connection with a PROXY protocol v2 header carrying the client's address"`
	drain          time.Duration `flag:"drain" arg:"DURATION" default:"30s" help:"how long (DURATION) to wait for open connections on SIGINT or SIGTERM before closing them"`
	maxConns       int           `flag:"max-conns" arg:"N" default:"10000" help:"N connections handled at once at most; one more is closed at once"`
	maxPerClient   int           `flag:"max-conns-per-client" arg:"N" default:"1000" help:"N of them at most from one client address (an IPv6 /64)"`
	idleTimeout    time.Duration `flag:"idle-timeout" arg:"DURATION" default:"10m" help:"close a spliced connection with no bytes in either direction for this DURATION (0: never)"`
	useIPTables    bool          `flag:"iptables" help:"redirect incoming TCP port 443 to --listen with iptables rules while running (Linux, root)"`
	rulespec       string        `flag:"rulespec" arg:"SPEC" help:"iptables SPEC after -t nat -A PREROUTING (default $ACME_ALPN_PROXY_RULESPEC,\nelse \"-p tcp --dport 443 -m addrtype --dst-type LOCAL -j REDIRECT --to-ports 21443\n-m comment --comment certkeeper-alpn-proxy\" with the --listen port); the tag comment is appended when missing"`
	iptablesOutput bool          `flag:"iptables-output" help:"also redirect connections from this host (nat OUTPUT), except the proxy user's own"`
	noIPv6         bool          `flag:"no-ipv6" help:"add no ip6tables rules (default true when $ACME_ALPN_PROXY_DISABLEV6 is y)"`
}

func alpnProxyStartCmd() *Command {
	f := &alpnStartFlags{}
	var flags *flag.FlagSet
	return &Command{
		UsageLine: "certkeeper alpn-proxy start [flags]",
		Serves:    true,
		Short:     "run the proxy until SIGINT or SIGTERM",
		Flags: func(fs *flag.FlagSet) {
			flags = fs
			cmdline.Bind(fs, f)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if f.useIPTables && !cmdline.Given(flags, "listen") { // REDIRECT delivers to the receiving interface's address (an alpn-proxy trial's cron hook)
				f.listen = ":21443"
			}
			if err := cmdline.CheckListenAddr(f.listen); err != nil {
				return usagef("--listen %s: %v", f.listen, err)
			}
			for _, a := range []struct{ flag, addr string }{{"--alpn", f.alpnAddr}, {"--fallback", f.fallback}} {
				if _, _, err := net.SplitHostPort(a.addr); err != nil {
					return usagef("%s %q: want HOST:PORT", a.flag, a.addr)
				}
				if alpnproxy.Loops(f.listen, a.addr) {
					return usagef("%s %s is this proxy's own --listen %s: each connection would come back to it; give your TLS server's (or the solver's) address", a.flag, a.addr, f.listen)
				}
			}
			if f.drain <= 0 {
				return usagef("--drain %s: must be positive", f.drain)
			}
			if f.maxConns <= 0 || f.maxPerClient <= 0 {
				return usagef("--max-conns %d, --max-conns-per-client %d: must be at least 1 (raise a limit rather than remove it)", f.maxConns, f.maxPerClient)
			}
			if f.idleTimeout < 0 || f.idleTimeout > 0 && f.idleTimeout < 100*time.Millisecond {
				return usagef("--idle-timeout %s: at least 100ms, which cuts a connection quiet that long (0 turns it off)", f.idleTimeout)
			}
			if f.idleTimeout == 0 {
				f.idleTimeout = -1 // alpnproxy.Server: negative is off, zero its default
			}
			if f.pidfile == "" {
				f.pidfile = string(alpnproxy.DefaultPidfile())
			}
			var rules *iptables.Redirect
			if f.useIPTables {
				if !cmdline.Given(flags, "no-ipv6") {
					f.noIPv6 = envDisablesV6()
				}
				if f.rulespec == "" {
					f.rulespec = os.Getenv(rulespecEnv)
				}
				rules = &iptables.Redirect{Spec: strings.Fields(f.rulespec), Output: f.iptablesOutput, ExceptUID: os.Geteuid(), IPv6: !f.noIPv6}
				if err := rules.Check(); err != nil {
					return fmt.Errorf("--iptables: %w", err)
				}
			} else if cmdline.Given(flags, "rulespec") || f.iptablesOutput || cmdline.Given(flags, "no-ipv6") {
				return usagef("--rulespec, --iptables-output and --no-ipv6 need --iptables")
			}
			srv := &alpnproxy.Server{ALPNAddr: f.alpnAddr, FallbackAddr: f.fallback, ProxyProtocol: f.proxyProtocol,
				MaxConns: f.maxConns, MaxConnsPerClient: f.maxPerClient, IdleTimeout: f.idleTimeout, Logger: env.Logger}
			return runALPNProxy(ctx, env, srv, f.listen, f.pidfile, f.drain, rules)
		},
	}
}

// runALPNProxy runs srv as alpn-proxy start does (alpnproxy.Runner) and
// prints its steps (Runner.Describe).
func runALPNProxy(ctx context.Context, env *Env, srv *alpnproxy.Server, listen, pidfile string, drain time.Duration, rules *iptables.Redirect) error {
	serveloop.ServerGC()
	r := &alpnproxy.Runner{Server: srv, Addr: listen, Pidfile: alpnproxy.Pidfile(pidfile), Drain: drain, Rules: rules, IgnoreHangup: true}
	r.Notify = func(e alpnproxy.Event) {
		if msg := r.Describe(e); msg != "" {
			fmt.Fprintf(env.Stderr, "certkeeper: %s\n", msg)
		}
	}
	err := r.Run(ctx)
	if le, ok := errors.AsType[*alpnproxy.ListenError](err); ok {
		return cmdline.ListenError(le.Err, le.Addr, "--listen", "the alpn-proxy")
	}
	if re, ok := errors.AsType[*alpnproxy.RunningError](err); ok && string(re.Pidfile) != string(alpnproxy.DefaultPidfile()) {
		return fmt.Errorf("%w: stop it with certkeeper alpn-proxy stop --pidfile %s", err, cmdline.ShellQuote(string(re.Pidfile)))
	} else if ok {
		return fmt.Errorf("%w: stop it with certkeeper alpn-proxy stop", err)
	}
	return err
}

func alpnProxyStopCmd() *Command {
	var pidfile string
	var timeout time.Duration
	return &Command{
		UsageLine: "certkeeper alpn-proxy stop [flags]",
		Short:     "stop a running proxy and wait until its connections are done",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pidfile, "pidfile", "", "`FILE` that alpn-proxy start wrote (default as for start)")
			timeout = 45 * time.Second
			fs.Var((*cmdline.Duration)(&timeout), "timeout", "how long (`DURATION`) to wait for the proxy to exit")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if pidfile == "" {
				pidfile = string(alpnproxy.DefaultPidfile())
			}
			return stopALPNProxy(ctx, env, pidfile, timeout)
		},
	}
}

func alpnProxyStatusCmd() *Command {
	var pidfile string
	var wait time.Duration
	return &Command{
		UsageLine: "certkeeper alpn-proxy status [flags]",
		Short:     "say whether a proxy runs: exit status 0 if it does, 1 if not",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&pidfile, "pidfile", "", "`FILE` that alpn-proxy start wrote (default as for start)")
			fs.Var((*cmdline.Duration)(&wait), "wait", "wait up to `DURATION` for the proxy to run (default: do not wait)")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if pidfile == "" {
				pidfile = string(alpnproxy.DefaultPidfile())
			}
			pid, err := alpnproxy.Pidfile(pidfile).WaitRunning(ctx, wait)
			if err != nil {
				return errors.Join(err, alpnproxy.LeftoverRules(ctx))
			}
			fmt.Fprintf(env.Stdout, "alpn-proxy is running (process %d, pidfile %s)\n", pid, pidfile)
			return nil
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
