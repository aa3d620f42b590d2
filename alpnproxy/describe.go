package alpnproxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy/iptables"
)

// Describe is e as the line "certkeeper alpn-proxy start" prints for it
// (without a prefix or newline), in terms of the command's flags
// (--listen, --alpn, --fallback, --max-conns), or "" for a step that
// needs no line: an InstallingRules only warns when Addr is a loopback
// address, where REDIRECT in PREROUTING never delivers. A Go program
// running r can show its operator the same steps from [Runner.Notify].
func (r *Runner) Describe(e Event) string {
	switch e.Kind {
	case InstallingRules:
		if tcp, ok := e.Addr.(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
			return fmt.Sprintf("note: --listen %s is a loopback address: REDIRECT in PREROUTING sends connections from other hosts to the receiving interface's address, which it does not listen on; use --listen :%d", e.Addr, tcp.Port)
		}
	case RulesAdded:
		where, tools := "nat PREROUTING", "iptables"
		if r.Rules != nil && r.Rules.Output {
			where += fmt.Sprintf(" and OUTPUT (except user %d's sockets)", r.Rules.ExceptUID)
		}
		if r.Rules != nil && r.Rules.IPv6 {
			tools = "iptables and ip6tables"
		}
		return fmt.Sprintf("alpn-proxy added rules to %s with %s: %s", where, tools, strings.Join(e.Spec, " "))
	case Listening:
		return fmt.Sprintf("alpn-proxy listening on %s: acme-tls/1 to %s, the rest to %s (pidfile %s)",
			e.Addr, r.Server.ALPNAddr, r.Server.FallbackAddr, r.pidfile())
	case RulesRemoved:
		return "alpn-proxy removed its iptables rules"
	case HangupIgnored:
		return "alpn-proxy ignores SIGHUP: stop it with SIGTERM or certkeeper alpn-proxy stop"
	case FallbackDown:
		return fmt.Sprintf("warning: nothing answers on --fallback %s (%v): every connection not for acme-tls/1 fails until your TLS server listens there",
			r.Server.FallbackAddr, e.Err)
	case Draining:
		return fmt.Sprintf("alpn-proxy stopping: waiting up to %s for %s", r.drain(), count(uint64(max(e.Open, 0)), "open connection"))
	case Finished:
		st := e.Stats
		return fmt.Sprintf("alpn-proxy stopped: %s, %d to --alpn, %d to --fallback, %d closed for an unreachable backend, %d closed over --max-conns, %d closed idle",
			count(st.Accepted, "connection"), st.ALPN, st.Fallback, st.DialErrors, st.Rejected, st.IdleClosed)
	}
	return ""
}

// count is "1 connection", "2 connections".
func count(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Halt stops the proxy in p as [Pidfile.Stop] does, removes a pidfile
// that a process no longer running left behind (a failure to remove it
// is logged to logger, which may be nil), and says what it found, as
// "certkeeper alpn-proxy stop" prints it. Nothing to stop is not an error.
// When none runs, the rules a killed proxy left are removed, and said.
func (p Pidfile) Halt(ctx context.Context, timeout time.Duration, logger *slog.Logger) (string, error) {
	msg, stopped, err := p.halt(ctx, timeout, logger)
	if err != nil || stopped || LeftoverRules(ctx) == nil {
		return msg, err
	}
	// None runs, and a killed one's rules send :443 nowhere (an alpn-proxy trial).
	if err := (&iptables.Redirect{IPv6: true}).Remove(ctx); err != nil {
		return msg, fmt.Errorf("removing the iptables rules a killed alpn-proxy left: %w", err)
	}
	return msg + "\nremoved the iptables rules a killed alpn-proxy left (port 443 went to a port nothing listened on)", nil
}

// LeftoverRules is an error naming the rules tagged as an alpn-proxy's
// (iptables.Tag) that are in place, for when none runs: one that was
// killed left them, and they send port 443 to a port nothing listens on.
// nil when there are none, or they cannot be listed (not root, not
// Linux).
func LeftoverRules(ctx context.Context) error {
	rules, _ := iptables.Tagged(ctx)
	if len(rules) == 0 {
		return nil
	}
	return fmt.Errorf("but the iptables rules of a killed alpn-proxy remain, sending port 443 to a port nothing listens on "+
		"(certkeeper alpn-proxy stop removes them): %s", strings.Join(rules, "; "))
}

// halt is Halt without the leftover rules; stopped: a proxy was stopped.
func (p Pidfile) halt(ctx context.Context, timeout time.Duration, logger *slog.Logger) (msg string, stopped bool, err error) {
	res, pid, err := p.Stop(ctx, timeout)
	if err != nil {
		return "", false, err
	}
	switch res {
	case Stale:
		if err := p.Remove(pid); err != nil && logger != nil {
			logger.Warn("removing pidfile failed", slog.String("pidfile", string(p)), slog.Any("err", err))
		}
		return fmt.Sprintf("alpn-proxy is not running (process %d is gone; removed %s)", pid, p), false, nil
	case Reused:
		if err := p.Remove(pid); err != nil && logger != nil {
			logger.Warn("removing pidfile failed", slog.String("pidfile", string(p)), slog.Any("err", err))
		}
		return fmt.Sprintf("alpn-proxy is not running (process %d started after %s was written: another program has its process ID, left alone; removed the pidfile)", pid, p), false, nil
	case Stopped:
		return fmt.Sprintf("alpn-proxy stopped (process %d)", pid), true, nil
	}
	return fmt.Sprintf("alpn-proxy is not running (no %s)", p), false, nil
}

// Status says whether the proxy of p runs, as "certkeeper alpn-proxy
// status" tells it: its process ID if it does, else an error saying why
// not (no pidfile, or one whose process is gone).
func (p Pidfile) Status() (int, error) {
	pid, err := p.Read()
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("not running (no %s)", p)
	}
	if err != nil {
		return 0, err
	}
	if !ProcessAlive(pid) {
		return 0, fmt.Errorf("not running (process %d of %s is gone; alpn-proxy stop removes the file)", pid, p)
	}
	if p.StartedAfter(pid) {
		return 0, fmt.Errorf("not running (process %d started after %s was written: another program has its process ID; alpn-proxy stop removes the file)", pid, p)
	}
	if what, other := otherProgram(pid); other {
		return 0, fmt.Errorf("not running: process %d of %s is not an alpn-proxy (%.80s): is the pidfile right?", pid, p, what)
	}
	return pid, nil
}

// WaitRunning waits, up to timeout, until the proxy of p runs (as
// [Pidfile.Status] tells it: the pidfile is written once the proxy listens
// and its rules are in place), and returns its process ID; after timeout,
// or when ctx ends, it returns Status's last error. A timeout of zero
// asks once. It is for a script that starts the proxy in the background
// and must not go on before the proxy is ready.
func (p Pidfile) WaitRunning(ctx context.Context, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, max(timeout, 0))
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		pid, err := p.Status()
		if err == nil {
			return pid, nil
		}
		select {
		case <-ctx.Done():
			if timeout > 0 {
				return 0, fmt.Errorf("%w after waiting %s", err, timeout)
			}
			return 0, err
		case <-tick.C:
		}
	}
}
