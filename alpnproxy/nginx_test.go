package alpnproxy_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
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
	certFile, keyFile := selfSigned(t)
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

// selfSigned writes a self-signed certificate for a.test and its key to
// files nginx can read.
func selfSigned(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"a.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // nginx's workers may run as another user
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
