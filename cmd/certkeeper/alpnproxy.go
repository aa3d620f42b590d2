package main

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
)

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
	certkeeper cert issue --challenge tls-alpn-01 --tls-addr 127.0.0.1:31443 -d a.example
	certkeeper alpn-proxy stop

Port 443 must reach the proxy's --listen address; firewall redirect rules are not set up by
alpn-proxy yet.`,
		Commands: []*Command{alpnProxyStartCmd(), alpnProxyStopCmd()},
	}
}

func alpnProxyStartCmd() *Command {
	var listen, alpnAddr, fallback, pidfile string
	var proxyProtocol bool
	var drain time.Duration
	return &Command{
		UsageLine: "certkeeper alpn-proxy start [flags]",
		Short:     "run the proxy until SIGINT or SIGTERM",
		Long: `Start listens on --listen and routes each connection by its first TLS record: a ClientHello
offering acme-tls/1 goes to --alpn, everything else to --fallback, with the bytes already read
replayed. A first packet that is not a complete ClientHello within 5 seconds (not TLS,
truncated, oversized, or nothing sent) goes to --fallback as it is, so the web server sees
what it would have seen without the proxy.

Start writes --pidfile once it listens and runs until SIGINT or SIGTERM (what "alpn-proxy
stop" sends); it then accepts nothing new, waits up to --drain for open connections to finish,
closes the rest, removes the pidfile and exits.

	certkeeper alpn-proxy start --listen 127.0.0.1:21443 --fallback 127.0.0.1:8443 &
	certkeeper alpn-proxy start --proxy-protocol   # nginx: listen 443 ssl proxy_protocol;`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&listen, "listen", "127.0.0.1:21443", "`ADDR` to accept connections on")
			fs.StringVar(&alpnAddr, "alpn", "127.0.0.1:31443", "`ADDR` of the ACME client answering tls-alpn-01 (cert issue --tls-addr)")
			fs.StringVar(&fallback, "fallback", "127.0.0.1:443", "`ADDR` of the TLS server that gets every other connection")
			fs.StringVar(&pidfile, "pidfile", "", "`FILE` holding the proxy's process ID (default $"+pidfileEnv+",\nelse certkeeper-alpn-proxy.pid in /run for root, $XDG_RUNTIME_DIR, or the temporary directory)")
			fs.BoolVar(&proxyProtocol, "proxy-protocol", false, "start each --fallback connection with a PROXY protocol v2 header carrying the client's address")
			fs.DurationVar(&drain, "drain", 30*time.Second, "how long to wait for open connections on SIGINT or SIGTERM before closing them")
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
			if pidfile == "" {
				pidfile = defaultPidfile()
			}
			srv := &alpnproxy.Server{ALPNAddr: alpnAddr, FallbackAddr: fallback, ProxyProtocol: proxyProtocol, Logger: env.Logger}
			return runALPNProxy(ctx, env, srv, listen, pidfile, drain)
		},
	}
}

// runALPNProxy serves srv on listen until ctx ends, with pidfile written
// while it listens.
func runALPNProxy(ctx context.Context, env *Env, srv *alpnproxy.Server, listen, pidfile string, drain time.Duration) error {
	if pid, err := readPidfile(pidfile); err == nil && processAlive(pid) {
		return fmt.Errorf("already running as process %d (pidfile %s): stop it with certkeeper alpn-proxy stop", pid, pidfile)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	if err := writePidfile(pidfile, os.Getpid()); err != nil {
		ln.Close()
		return err
	}
	defer removePidfile(env, pidfile, os.Getpid())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	env.Logger.Info("alpn-proxy listening", slog.String("addr", ln.Addr().String()),
		slog.String("alpn", srv.ALPNAddr), slog.String("fallback", srv.FallbackAddr))
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy listening on %s: acme-tls/1 to %s, the rest to %s (pidfile %s)\n",
		ln.Addr(), srv.ALPNAddr, srv.FallbackAddr, pidfile)
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	open := srv.Stats().Active
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy stopping: waiting up to %s for %d open connections\n", drain, open)
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err = srv.Shutdown(dctx)
	<-served
	st := srv.Stats()
	fmt.Fprintf(env.Stderr, "certkeeper: alpn-proxy stopped: %d connections, %d to --alpn, %d to --fallback\n", st.Accepted, st.ALPN, st.Fallback)
	if err != nil {
		return fmt.Errorf("draining: connections still open after %s were closed: %w", drain, err)
	}
	return nil
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
			fs.DurationVar(&timeout, "timeout", 45*time.Second, "how long to wait for the proxy to exit")
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
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".pidfile-*")
	if err != nil {
		return fmt.Errorf("writing pidfile %s: %w", path, err)
	}
	_, err = fmt.Fprintf(f, "%d\n", pid)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
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
