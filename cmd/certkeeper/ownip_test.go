package main

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestRequireOwnIPLoopback: with --require-own-ip, a name resolving to
// loopback ("localhost", from /etc/hosts: no DNS query leaves the host) is
// refused, with a log line that names the address and the flag that would
// allow it; with --own-ip-private as well it is served (an internal CA).
func TestRequireOwnIPLoopback(t *testing.T) {
	if addrs, err := net.LookupHost("localhost"); err != nil || len(addrs) == 0 {
		t.Skipf("localhost does not resolve here: %v %v", addrs, err)
	}
	handshake := func(port int) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
		}
		return err
	}
	back := newBackend(t, "hello")
	port := testsvc.FreePort(t)
	p := startProxyLogged(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--ca", "local", "--require-own-ip",
		"--storage", t.TempDir(), "--backend", back.url, "--log-level", "debug")
	if err := handshake(port); err == nil {
		t.Errorf("--require-own-ip: the handshake for localhost (loopback) succeeded, want it refused")
	}
	if !within(10*time.Second, func() bool { return strings.Contains(p.output(), "own-ip-private") }) {
		t.Errorf("the refusal does not say how to allow loopback:\n%s", p.output())
	}

	port = testsvc.FreePort(t)
	startProxyLogged(t, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--ca", "local", "--require-own-ip", "--own-ip-private",
		"--storage", t.TempDir(), "--backend", back.url)
	if err := handshake(port); err != nil {
		t.Errorf("--require-own-ip --own-ip-private: handshake for localhost: %v", err)
	}
}
