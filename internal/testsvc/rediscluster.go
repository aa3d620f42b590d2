package testsvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const redisCLIHint = "install Debian's redis-tools (apt-get install redis-tools)"

// clusterBusOffset is how far above its client port a Redis Cluster node
// listens for the cluster bus, by default.
const clusterBusOffset = 10000

// RedisClusterServer is a Redis Cluster of masters without replicas run
// for one test: no persistence, no password, 127.0.0.1 only.
type RedisClusterServer struct {
	addrs []string
	procs []*Process
}

// RedisCluster starts masters redis-server nodes in cluster mode on free
// 127.0.0.1 ports (each with its cluster bus port, port+10000, free too),
// joins them with "redis-cli --cluster create --cluster-replicas 0" and
// waits until every node reports cluster_state:ok. The nodes are killed
// when the test ends. If redis-server or redis-cli is not installed,
// RedisCluster skips the test (fails it under CI=true). Redis Cluster needs
// at least 3 masters.
func RedisCluster(t testing.TB, masters int) *RedisClusterServer {
	t.Helper()
	if masters < 3 {
		t.Fatalf("testsvc: a Redis Cluster needs at least 3 masters, not %d", masters)
	}
	server := LookPath(t, "redis-server", redisHint)
	cli := LookPath(t, "redis-cli", redisCLIHint)
	c := &RedisClusterServer{}
	err := RetryPorts(func() error {
		for _, p := range c.procs {
			_ = p.Stop()
		}
		c.addrs, c.procs = nil, nil
		for _, port := range clusterPorts(t, masters) {
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			p, err := startClusterNode(t, server, addr)
			c.addrs = append(c.addrs, addr)
			if p != nil {
				c.procs = append(c.procs, p)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testsvc: starting redis-server cluster nodes: %v", err)
	}

	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testsvc: redis-cli --cluster create %s: %v\n%s", strings.Join(c.addrs, " "), err, out)
	}
	for _, addr := range c.addrs {
		if err := waitClusterOK(ctx, addr, masters); err != nil {
			t.Fatalf("testsvc: Redis Cluster node %s: %v\nredis-cli output:\n%s", addr, err, out)
		}
	}
	return c
}

// Addrs returns the host:port of every master, e.g. "127.0.0.1:40123".
func (c *RedisClusterServer) Addrs() []string { return append([]string(nil), c.addrs...) }

// Stop kills every node. It may be called more than once.
func (c *RedisClusterServer) Stop() {
	for _, p := range c.procs {
		_ = p.Stop()
	}
}

// clusterPorts returns n ports from FreePort whose cluster bus ports
// (port+10000) are free too.
func clusterPorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 200 {
			t.Fatalf("testsvc: found only %d of %d ports with a free cluster bus port", len(ports), n)
		}
		p := FreePort(t)
		if p+clusterBusOffset > 65535 {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+clusterBusOffset)))
		if err != nil {
			continue
		}
		ln.Close()
		ports = append(ports, p)
	}
	return ports
}

// startClusterNode starts one cluster node on addr and waits for PING.
func startClusterNode(t testing.TB, bin, addr string) (*Process, error) {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	dir := t.TempDir()
	cmd := exec.Command(bin,
		"--bind", "127.0.0.1",
		"--port", port,
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "5000",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--logfile", "",
	)
	cmd.Dir = dir
	p, err := StartProcess(t, cmd, nil)
	if err != nil {
		return nil, err
	}
	return p, p.WaitReady(readyTimeout, func(ctx context.Context) error { return redisPing(ctx, addr) })
}

// waitClusterOK polls CLUSTER INFO on addr until the node reports
// cluster_state:ok and knows all masters.
func waitClusterOK(ctx context.Context, addr string, masters int) error {
	want := []string{"cluster_state:ok", "cluster_known_nodes:" + strconv.Itoa(masters), "cluster_size:" + strconv.Itoa(masters)}
	var last string
	var err error
	for {
		last, err = redisBulk(ctx, addr, "CLUSTER", "INFO")
		if err == nil && containsLines(last, want) {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("CLUSTER INFO: %w", err)
			}
			return fmt.Errorf("CLUSTER INFO does not say %q after %v:\n%s", want, readyTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func containsLines(info string, want []string) bool {
	lines := strings.Split(strings.ReplaceAll(info, "\r\n", "\n"), "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			if l == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// redisBulk sends a command in RESP and returns its bulk string reply.
func redisBulk(ctx context.Context, addr string, args ...string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	switch {
	case strings.HasPrefix(line, "-"):
		return "", errors.New(line[1:])
	case strings.HasPrefix(line, "+"):
		return line[1:], nil
	case strings.HasPrefix(line, "$"):
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("unexpected reply %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
