package testsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ErrExited is wrapped by [Process.WaitReady] when the process exited before
// it was ready. Callers that chose its ports just before starting it treat
// this as "someone else took the port" and try again on fresh ports.
var ErrExited = errors.New("process exited")

// maxOutput bounds the output kept per process; a benchmark that runs a
// server for thousands of requests must not hold all its logs in memory.
const maxOutput = 8 << 20

// stopTimeout bounds how long Stop waits for a killed process to be reaped.
const stopTimeout = 10 * time.Second

// Process is a child process run for one test. Its stdout and stderr are
// kept in memory (see [Process.Output]) and printed through t.Log when the
// test has failed; the process is killed when the test ends, or earlier by
// [Process.Stop].
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *output
	done chan struct{} // closed once the process has exited and its output is read
	err  error         // cmd.Wait's result; written before done is closed
}

// StartProcess starts cmd as a child of the test t. cmd must not have been
// started and its Stdout and Stderr must be nil: StartProcess captures both.
// If onLine is not nil, it is called with every line of output (stdout and
// stderr interleaved, without the newline), one line at a time, in order; it
// must not block.
//
// On Linux the child is put in its own process group, which Stop kills as a
// whole, and gets SIGKILL if the test binary dies without running its
// cleanups (a -timeout panic, say).
func StartProcess(t testing.TB, cmd *exec.Cmd, onLine func(line string)) (*Process, error) {
	t.Helper()
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, errors.New("testsvc: StartProcess captures Stdout and Stderr; leave them nil")
	}
	name := filepath.Base(cmd.Path)
	out := &output{onLine: onLine}
	// One writer for both: exec then shares one pipe, which keeps the
	// interleaving of stdout and stderr and calls Write from one goroutine.
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild that inherited the pipe must not keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		out.flush()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("output of %s (pid %d, %s):\n%s", name, cmd.Process.Pid, p.status(), out.String())
		}
	})
	return p, nil
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done returns a channel closed once the process has exited and all its
// output has been read.
func (p *Process) Done() <-chan struct{} { return p.done }

// Output returns the output captured so far.
func (p *Process) Output() string { return p.out.String() }

// Stop kills the process (its whole process group on Linux) and waits until
// it has been reaped. It may be called more than once and after the process
// has exited on its own.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	kill(p.cmd)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("testsvc: %s (pid %d) still running %v after SIGKILL", p.name, p.Pid(), stopTimeout)
	}
}

// WaitReady calls probe until it returns nil, the process exits, or timeout
// passes, whichever is first. Each call of probe gets a context bounded by
// the time left. The error says which of these happened and includes the
// last probe error; it wraps [ErrExited] if the process exited.
func (p *Process) WaitReady(timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	backoff := 5 * time.Millisecond
	for {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready (%s; last probe: %v): %w",
				p.name, p.status(), err, ErrExited)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", p.name, timeout, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// status describes how the process ended, or says it has not.
func (p *Process) status() string {
	select {
	case <-p.done:
	default:
		return "still running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// output is the io.Writer that receives a process's stdout and stderr.
type output struct {
	onLine func(string)

	mu        sync.Mutex // guards the fields below
	buf       bytes.Buffer
	truncated bool
	partial   []byte // the start of a line whose newline has not arrived
}

func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := maxOutput - o.buf.Len(); room >= len(b) {
		o.buf.Write(b)
	} else if !o.truncated {
		o.buf.Write(b[:max(room, 0)])
		o.buf.WriteString("\n[testsvc: output truncated]\n")
		o.truncated = true
	}
	if o.onLine == nil {
		return len(b), nil
	}
	o.partial = append(o.partial, b...)
	start := 0
	for {
		i := bytes.IndexByte(o.partial[start:], '\n')
		if i < 0 {
			break
		}
		o.onLine(string(o.partial[start : start+i]))
		start += i + 1
	}
	o.partial = o.partial[:copy(o.partial, o.partial[start:])]
	return len(b), nil
}

// flush hands a last line that had no newline to onLine.
func (o *output) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.onLine != nil && len(o.partial) > 0 {
		o.onLine(string(o.partial))
		o.partial = nil
	}
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// handedOut remembers the ports FreePort returned in this process, so that two
// calls in a row never return the same port before either is bound.
var handedOut struct {
	mu    sync.Mutex
	ports map[int]bool
}

// FreePort returns a port on 127.0.0.1 that was free for both TCP and UDP
// when it was chosen and that FreePort has not returned before in this
// process. Another process may still take it before the caller binds it:
// helpers that start servers on such ports retry on fresh ones when the
// server exits at once (see [ErrExited]).
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	var lastErr error
	for range 50 {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		if handedOut.ports[port] {
			continue
		}
		if handedOut.ports == nil {
			handedOut.ports = make(map[int]bool)
		}
		handedOut.ports[port] = true
		return port
	}
	t.Fatalf("testsvc: no free port on 127.0.0.1: %v", lastErr)
	return 0
}

// freePort picks a port below the kernel's range of ephemeral ports when
// it can (Linux: /proc/sys/net/ipv4/ip_local_port_range), else one the
// kernel hands out. A port from the ephemeral range can, once a server on it
// stops, become the source port of some outgoing connection, and a server
// started again on it then fails with "address already in use": a test that
// restarts a process on the same port flaked that way under load.
func freePort() (int, error) {
	addr := "127.0.0.1:0"
	if lo, hi, ok := stablePorts(); ok {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(lo+rand.IntN(hi-lo)))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return 0, err
	}
	pc.Close()
	return port, nil
}

// startAttempts is how often RetryPorts tries fresh ports.
const startAttempts = 3

// RetryPorts calls start until it returns nil or an error that does not wrap
// [ErrExited], three times at most, and returns start's last result. start
// picks fresh ports with [FreePort] and starts a server on them: a server
// that exits at once has most likely lost its port to another process.
func RetryPorts(start func() error) error {
	var err error
	for range startAttempts {
		if err = start(); !errors.Is(err, ErrExited) {
			return err
		}
	}
	return err
}

// stablePorts returns [lo, hi): ports below the ephemeral range, which the
// kernel never picks as source ports, when there are enough of them.
func stablePorts() (lo, hi int, ok bool) {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 0, 0, false
	}
	first, err := strconv.Atoi(fields[0])
	if err != nil || first < 12000 {
		return 0, 0, false
	}
	return 10000, first, true
}

// OtherLoopback is the second client address tests connect from to be
// another client: 127.0.0.2. All of 127.0.0.0/8 is loopback on Linux;
// elsewhere only 127.0.0.1 may be configured, and then the error says so.
func OtherLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		return "", fmt.Errorf("127.0.0.2 is not configured here: %w", err)
	}
	ln.Close()
	return "127.0.0.2", nil
}
