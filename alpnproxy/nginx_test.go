package alpnproxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestProbeProxyProtocolNginx: with ProxyProtocol, the Runner's probe of
// the fallback at start leaves no error in the log of an nginx that
// expects PROXY protocol headers (a connection closed without one is
// "broken header" at error level, which log monitors alert on, once per
// renewal), and a client through the proxy is served with its address.
func TestProbeProxyProtocolNginx(t *testing.T) {
	ready, pp := testsvc.FreePort(t), testsvc.FreePort(t)
	certFile, keyFile := testsvc.SelfSignedFiles(t, t.TempDir(), "a.test")
	ngx := testsvc.Nginx(t, testsvc.NginxOptions{
		HTTP: fmt.Sprintf(`
  server { listen 127.0.0.1:%d; return 204; }
  server {
    listen 127.0.0.1:%d ssl proxy_protocol;
    ssl_certificate %s;
    ssl_certificate_key %s;
    return 200 "client $proxy_protocol_addr\n";
  }
`, ready, pp, certFile, keyFile),
		Ready: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(ready))},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	listening := make(chan net.Addr, 1)
	r := &alpnproxy.Runner{
		Server: &alpnproxy.Server{ALPNAddr: "127.0.0.1:1", FallbackAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(pp)),
			ProxyProtocol: true, ReadTimeout: 200 * time.Millisecond},
		Addr:    "127.0.0.1:0",
		Drain:   5 * time.Second,
		Pidfile: alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid")),
		Notify: func(e alpnproxy.Event) {
			switch e.Kind {
			case alpnproxy.Listening:
				listening <- e.Addr
			case alpnproxy.FallbackDown:
				t.Errorf("fallback down: %v", e.Err)
			}
		},
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var addr net.Addr
	select {
	case addr = <-listening:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	// An HTTPS request through the proxy, after the probe: nginx has
	// handled the probe's connection by the time it answers this one.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr.String(),
		&tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET / HTTP/1.0\r\nHost: a.test\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("request through the proxy: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	c.Close()
	if string(body) != "client 127.0.0.1\n" {
		t.Errorf("nginx saw %q, want the client's address from the PROXY header", body)
	}
	if resp.StatusCode != 200 {
		t.Errorf("through the proxy: %s, want 200", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // nginx writes its log as it handles the connections
	log, err := os.ReadFile(ngx.ErrorLog())
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(log)) {
		if strings.Contains(line, "[error]") || strings.Contains(line, "PROXY protocol") {
			t.Errorf("nginx error.log: %s", line)
		}
	}
}
