package alpnproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
	"github.com/certkeeper/certkeeper/alpnproxy/iptables"
)

func TestPidfile(t *testing.T) {
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	if _, err := p.Read(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read of a missing pidfile = %v, want fs.ErrNotExist", err)
	}
	if err := p.Write(4242); err != nil {
		t.Fatal(err)
	}
	if pid, err := p.Read(); err != nil || pid != 4242 {
		t.Fatalf("Read = %d, %v; want 4242", pid, err)
	}
	if err := p.Remove(4243); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(string(p)); err != nil {
		t.Fatalf("Remove of another process's pidfile removed it: %v", err)
	}
	if err := p.Remove(4242); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(string(p)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile still there after Remove: %v", err)
	}
	if err := os.WriteFile(string(p), []byte("nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(); err == nil {
		t.Fatal("Read of a pidfile holding no number succeeded")
	}
}

func TestPidfileStop(t *testing.T) {
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	if res, _, err := p.Stop(t.Context(), time.Second); err != nil || res != alpnproxy.NotRunning {
		t.Fatalf("Stop without a pidfile = %v, %v; want NotRunning", res, err)
	}
	// A process that has exited: its pidfile is stale.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := p.Write(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	res, pid, err := p.Stop(t.Context(), time.Second)
	if err != nil || res != alpnproxy.Stale || pid != cmd.Process.Pid {
		t.Fatalf("Stop of an exited process = %v, %d, %v; want Stale, %d", res, pid, err, cmd.Process.Pid)
	}
}

func TestRunner(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	// The probe of the fallback at start connects and sends nothing.
	probed := make(chan int, 1)
	go func() {
		c, err := backend.Accept()
		if err != nil {
			probed <- -1
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		n, _ := io.Copy(io.Discard, c)
		probed <- int(n)
	}()
	pidfile := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	var mu sync.Mutex
	var kinds []alpnproxy.EventKind
	listening := make(chan net.Addr, 1)
	r := &alpnproxy.Runner{
		Server:  &alpnproxy.Server{ALPNAddr: backend.Addr().String(), FallbackAddr: backend.Addr().String()},
		Addr:    "127.0.0.1:0",
		Pidfile: pidfile,
		Drain:   time.Second,
		Notify: func(e alpnproxy.Event) {
			mu.Lock()
			kinds = append(kinds, e.Kind)
			mu.Unlock()
			if e.Kind == alpnproxy.Listening {
				listening <- e.Addr
			}
		},
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not listen within 10 s")
	}
	if pid, err := pidfile.Read(); err != nil || pid != os.Getpid() {
		t.Fatalf("pidfile holds %d, %v while running; want %d", pid, err, os.Getpid())
	}
	select {
	case n := <-probed:
		if n != 0 {
			t.Errorf("the fallback probe sent %d bytes (or was not accepted: -1), want a bare connect", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fallback was not probed within 10 s of listening")
	}
	// A second Runner on the same pidfile refuses to start.
	err = (&alpnproxy.Runner{Server: &alpnproxy.Server{}, Addr: "127.0.0.1:0", Pidfile: pidfile}).Run(t.Context())
	if rerr, ok := errors.AsType[*alpnproxy.RunningError](err); !ok || rerr.PID != os.Getpid() {
		t.Fatalf("second Run = %v, want *RunningError for this process", err)
	}
	stopRun(t, cancel, done)
	if _, err := os.Stat(string(pidfile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pidfile left behind: %v", err)
	}
	want := []alpnproxy.EventKind{alpnproxy.Listening, alpnproxy.Draining, alpnproxy.Finished}
	if !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}
}

// TestRunnerFallbackDown: with nothing listening on the fallback, Run
// reports it once right after Listening and serves on: the web server may
// come up later.
func TestRunnerFallbackDown(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fallback := closed.Addr().String()
	closed.Close()
	events := make(chan alpnproxy.Event, 10)
	r := &alpnproxy.Runner{
		Server:  &alpnproxy.Server{ALPNAddr: fallback, FallbackAddr: fallback},
		Addr:    "127.0.0.1:0",
		Pidfile: alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid")),
		Drain:   time.Second,
		Notify:  func(e alpnproxy.Event) { events <- e },
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	next := func() alpnproxy.Event {
		select {
		case e := <-events:
			return e
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10 s")
		}
		return alpnproxy.Event{}
	}
	e0 := next()
	if e0.Kind != alpnproxy.Listening {
		t.Fatalf("first event %v, want Listening", e0.Kind)
	}
	e := next()
	if e.Kind != alpnproxy.FallbackDown || e.Err == nil {
		t.Fatalf("second event %v (err %v), want FallbackDown with the dial error", e.Kind, e.Err)
	}
	want := "warning: nothing answers on --fallback " + fallback + " ("
	if got := r.Describe(e); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "every connection not for acme-tls/1 fails until your TLS server listens there") {
		t.Errorf("Describe(FallbackDown) = %q, want it to start %q", got, want)
	}
	// A client: its connection is closed, and the stop line says why.
	c, err := net.DialTimeout("tcp", e0.Addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client read %d bytes, %v; want the connection closed", n, err)
	}
	stopRun(t, cancel, done)
	var fin alpnproxy.Event
	for len(events) > 0 {
		if e := <-events; e.Kind == alpnproxy.Finished {
			fin = e
		}
	}
	if got, want := r.Describe(fin), "1 to --fallback, 1 closed for an unreachable backend,"; !strings.Contains(got, want) {
		t.Errorf("stop line %q, want it to contain %q", got, want)
	}
}

// stopRun ends the context of a Run (cancel) and waits for it to return
// nil on done.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}
}

// TestDescribe: the steps read as alpn-proxy start prints them; a
// listener that is not loopback needs no note before its rules.
func TestDescribe(t *testing.T) {
	r := &alpnproxy.Runner{Server: &alpnproxy.Server{ALPNAddr: "127.0.0.1:31443", FallbackAddr: "127.0.0.1:443"}, Pidfile: "/run/p.pid"}
	lo := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21443}
	for _, c := range []struct {
		e    alpnproxy.Event
		want string
	}{
		{alpnproxy.Event{Kind: alpnproxy.InstallingRules, Addr: &net.TCPAddr{IP: net.IPv4zero, Port: 21443}}, ""},
		{alpnproxy.Event{Kind: alpnproxy.InstallingRules, Addr: lo}, "note: --listen 127.0.0.1:21443 is a loopback address: REDIRECT in PREROUTING sends connections from other hosts to the receiving interface's address, which it does not listen on; use --listen :21443"},
		{alpnproxy.Event{Kind: alpnproxy.RulesAdded, Spec: []string{"-p", "tcp"}}, "alpn-proxy added rules to nat PREROUTING with iptables: -p tcp"},
		{alpnproxy.Event{Kind: alpnproxy.Listening, Addr: lo}, "alpn-proxy listening on 127.0.0.1:21443: acme-tls/1 to 127.0.0.1:31443, the rest to 127.0.0.1:443 (pidfile /run/p.pid)"},
		{alpnproxy.Event{Kind: alpnproxy.RulesRemoved}, "alpn-proxy removed its iptables rules"},
		{alpnproxy.Event{Kind: alpnproxy.Draining, Open: 3}, "alpn-proxy stopping: waiting up to 30s for 3 open connections"},
		{alpnproxy.Event{Kind: alpnproxy.Draining, Open: 1}, "alpn-proxy stopping: waiting up to 30s for 1 open connection"},
		{alpnproxy.Event{Kind: alpnproxy.Finished, Stats: alpnproxy.Stats{Accepted: 1, Fallback: 1}},
			"alpn-proxy stopped: 1 connection, 0 to --alpn, 1 to --fallback, 0 closed for an unreachable backend, 0 closed over --max-conns, 0 closed idle"},
		{alpnproxy.Event{Kind: alpnproxy.Finished, Stats: alpnproxy.Stats{Accepted: 5, ALPN: 1, Fallback: 3, DialErrors: 1, Rejected: 1}},
			"alpn-proxy stopped: 5 connections, 1 to --alpn, 3 to --fallback, 1 closed for an unreachable backend, 1 closed over --max-conns, 0 closed idle"},
	} {
		if got := r.Describe(c.e); got != c.want {
			t.Errorf("Describe(%+v) = %q, want %q", c.e, got, c.want)
		}
	}
	// With --iptables-output and ip6tables, the line says where the rules are.
	r.Rules = &iptables.Redirect{Output: true, ExceptUID: 0, IPv6: true}
	e := alpnproxy.Event{Kind: alpnproxy.RulesAdded, Spec: []string{"-p", "tcp"}}
	if got, want := r.Describe(e), "alpn-proxy added rules to nat PREROUTING and OUTPUT (except user 0's sockets) with iptables and ip6tables: -p tcp"; got != want {
		t.Errorf("Describe(RulesAdded) with OUTPUT and IPv6 = %q, want %q", got, want)
	}
}

// TestStatus: Status finds this process running, and says why not for
// no pidfile and for one whose process is gone.
func TestStatus(t *testing.T) {
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	if _, err := p.Status(); err == nil || !strings.Contains(err.Error(), "not running (no ") {
		t.Errorf("Status without a pidfile = %v, want not running", err)
	}
	if err := p.Write(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if pid, err := p.Status(); err != nil || pid != os.Getpid() {
		t.Errorf("Status = %d, %v; want this process, %d", pid, err, os.Getpid())
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := p.Write(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("not running (process %d of %s is gone", cmd.Process.Pid, p)
	if _, err := p.Status(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Status of an exited process = %v, want %q", err, want)
	}
}

// TestHalt: Halt says there is nothing to stop, and removes a stale
// pidfile.
func TestHalt(t *testing.T) {
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	if msg, err := p.Halt(t.Context(), time.Second, nil); err != nil || msg != "alpn-proxy is not running (no "+string(p)+")" {
		t.Fatalf("Halt without a pidfile = %q, %v", msg, err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := p.Write(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	msg, err := p.Halt(t.Context(), time.Second, nil)
	if want := fmt.Sprintf("alpn-proxy is not running (process %d is gone; removed %s)", cmd.Process.Pid, p); err != nil || msg != want {
		t.Fatalf("Halt of an exited process = %q, %v; want %q", msg, err, want)
	}
	if _, err := os.Stat(string(p)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale pidfile is still there: %v", err)
	}
}

// TestWaitRunning: WaitRunning returns once the pidfile names a running
// process, written after the wait began, and gives up after its timeout
// with Status's reason.
func TestWaitRunning(t *testing.T) {
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	if _, err := p.WaitRunning(t.Context(), 0); err == nil || !strings.Contains(err.Error(), "not running (no ") {
		t.Errorf("WaitRunning(0) without a pidfile = %v, want not running at once", err)
	}
	start := time.Now()
	if _, err := p.WaitRunning(t.Context(), 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "after waiting 200ms") {
		t.Errorf("WaitRunning(200ms) without a pidfile = %v, want not running after waiting", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("WaitRunning(200ms) took %v", took)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		if err := p.Write(os.Getpid()); err != nil {
			t.Error(err)
		}
	}()
	if pid, err := p.WaitRunning(t.Context(), 10*time.Second); err != nil || pid != os.Getpid() {
		t.Errorf("WaitRunning = %d, %v; want this process once the pidfile is written", pid, err)
	}
}
