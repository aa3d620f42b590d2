package cli

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/policy"
)

// TestRequireOwnIPLoopback: with --require-own-ip, a name resolving to
// loopback ("localhost", from /etc/hosts: no DNS query leaves the host) is
// refused, with a log line that names the address and the flag that would
// allow it; with --own-ip-private as well it is served (an internal CA).
func TestRequireOwnIPLoopback(t *testing.T) {
	if addrs, err := net.LookupHost("localhost"); err != nil || len(addrs) == 0 {
		testsvc.Unavailable(t, "localhost in /etc/hosts", "add the line: 127.0.0.1 localhost", fmt.Errorf("%v, %v", addrs, err))
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

// TestOwnIPPrivateConfigKey: own_ip_private in --config sets the policy's
// AllowPrivate, and --own-ip-private without --require-own-ip is refused.
func TestOwnIPPrivateConfigKey(t *testing.T) {
	f := filepath.Join(t.TempDir(), "proxy.yaml")
	if err := os.WriteFile(f, []byte("require_own_ip: true\nown_ip_private: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadProxyConfig(&source{file: f, set: map[string]bool{}}, &proxyConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.policy()
	if r, ok := p.(*policy.RequireOwnIP); err != nil || !ok || !r.AllowPrivate {
		t.Errorf("policy from require_own_ip and own_ip_private = %#v, %v; want a RequireOwnIP with AllowPrivate", p, err)
	}
	r := ck(t, 10*time.Second, "proxy", "--own-ip-private", "--allow", "a.test", "--tls-addr", "127.0.0.1:0", "--storage", t.TempDir())
	if r.code != 2 || !strings.Contains(r.stderr, "--require-own-ip") {
		t.Errorf("proxy --own-ip-private alone: exit %d, stderr %q; want a usage error naming --require-own-ip", r.code, r.stderr)
	}
}
