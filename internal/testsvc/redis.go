package testsvc

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

const redisHint = "install Debian's redis-server (apt-get install redis-server)"

// readyTimeout bounds how long a server may take to answer after it starts;
// generous because the machine is shared and tests run in parallel.
const readyTimeout = 20 * time.Second

// RedisServer is a redis-server run for one test: no persistence, no
// password, listening on 127.0.0.1 only, its working directory in
// t.TempDir().
type RedisServer struct {
	bin  string
	dir  string
	addr string

	mu   sync.Mutex // guards proc
	proc *Process
}

// Redis starts redis-server on a free 127.0.0.1 port and waits until it
// answers PING. The server is killed when the test ends. If redis-server is
// not installed, Redis skips the test (fails it under CI=true).
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	r := &RedisServer{bin: LookPath(t, "redis-server", redisHint), dir: t.TempDir()}
	err := RetryPorts(func() error {
		r.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
		return r.start(t)
	})
	if err != nil {
		t.Fatalf("testsvc: starting redis-server: %v", err)
	}
	return r
}

// Addr returns the server's host:port, e.g. "127.0.0.1:40123".
func (r *RedisServer) Addr() string { return r.addr }

// Stop kills the server, so that tests can see what a dead Redis does to
// their code. It may be called more than once.
func (r *RedisServer) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A process that outlives SIGKILL is reported by the cleanup that
	// StartProcess registered, which stops it again.
	_ = r.proc.Stop()
}

// Restart kills the server and starts a new, empty one on the same address.
// It fails the test if the address has been taken in between.
func (r *RedisServer) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	if err := r.start(t); err != nil {
		t.Fatalf("testsvc: restarting redis-server on %s: %v", r.addr, err)
	}
}

func (r *RedisServer) start(t testing.TB) error {
	t.Helper()
	_, port, _ := net.SplitHostPort(r.addr)
	cmd := exec.Command(r.bin,
		"--bind", "127.0.0.1",
		"--port", port,
		"--save", "",
		"--appendonly", "no",
		"--dir", r.dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Dir = r.dir
	p, err := StartProcess(t, cmd, nil)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	return p.WaitReady(readyTimeout, func(ctx context.Context) error { return redisPing(ctx, r.addr) })
}

// redisPing sends PING in RESP and expects +PONG.
func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
