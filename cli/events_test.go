package cli

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"
)

// TestEventsOnce: a certificate obtained, a name refused and the proxy
// (or server) listening each reach stderr once, in text mode as in JSON
// (not as a human line and a log record both, nor from two observers).
func TestEventsOnce(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			addr := loopbackAddrs(t, 1)[0]
			p := startProxyLogged(t, "--allow", "a.example", "--ca", "local", "--storage", t.TempDir(), "--tls-addr", addr,
				"--log-format", format)
			for _, name := range []string{"a.example", "refused.example"} {
				conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr,
					&tls.Config{ServerName: name, InsecureSkipVerify: true})
				if err == nil {
					conn.Close()
				} else if name == "a.example" {
					t.Fatalf("handshake for %s: %v", name, err)
				}
			}
			events := []string{"certificate obtained", "name refused", "proxy listening"}
			within(10*time.Second, func() bool {
				out := p.output()
				return strings.Contains(out, events[0]) && strings.Contains(out, events[1])
			})
			time.Sleep(200 * time.Millisecond) // a second report of either would be written by now
			out := p.output()
			for _, event := range events {
				if n := strings.Count(out, event); n != 1 {
					t.Errorf("%q appears %d times on stderr, want once:\n%s", event, n, out)
				}
			}
			server := startLogged(t, binary, "server listening", "server", "--ca", "local", "--storage", t.TempDir(),
				"--listen", loopbackAddrs(t, 1)[0], "--token-file", writeTokens(t), "--log-format", format)
			if n := strings.Count(server.output(), "server listening"); n != 1 {
				t.Errorf("%q appears %d times on the server's stderr, want once:\n%s", "server listening", n, server.output())
			}
			if format != "json" {
				return
			}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if !json.Valid([]byte(l)) {
					t.Errorf("with --log-format json, stderr has a line that is not JSON: %s", l)
				}
			}
		})
	}
}
