package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/proxy"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// testPKI is a CA and a leaf certificate it signed for the names the tests
// use.
type testPKI struct {
	roots    *x509.CertPool
	rootFile string // the CA certificate, PEM, for curl --cacert
	leaf     tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "proxy test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "a.test"},
		DNSNames:     []string{"a.test", "b.test", "*.b.test", "localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &testPKI{
		roots:    roots,
		rootFile: rootFile,
		leaf:     tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
	}
}

// testProxy is a proxy.Server on a loopback port.
type testProxy struct {
	srv      *proxy.Server
	addr     string // host:port
	port     string
	pki      *testPKI
	serveErr chan error
	stopOnce sync.Once
}

// startProxy serves h over TLS on a free port of the loopback address
// host ("127.0.0.1" or "::1"), and shuts it down at cleanup; each of
// configure may set the Server's fields before it serves.
func startProxy(t *testing.T, host string, h http.Handler, logger *slog.Logger, configure ...func(*proxy.Server)) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	pki := newPKI(t)
	p := &testProxy{
		srv: &proxy.Server{
			TLSConfig: &tls.Config{
				Certificates: []tls.Certificate{pki.leaf},
				NextProtos:   []string{"h2", "http/1.1", "acme-tls/1"},
			},
			Handler: h,
			Logger:  logger,
		},
		addr:     ln.Addr().String(),
		pki:      pki,
		serveErr: make(chan error, 1),
	}
	_, p.port, _ = net.SplitHostPort(p.addr)
	for _, c := range configure {
		c(p.srv)
	}
	go func() { p.serveErr <- p.srv.Serve(ln) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop shuts the proxy down, once, and checks that Serve returned
// http.ErrServerClosed.
func (p *testProxy) stop(t *testing.T) {
	t.Helper()
	p.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown() = %v, want nil", err)
		}
		p.waitServe(t)
	})
}

// markStopped tells cleanup that the test has shut the proxy down and
// seen Serve return.
func (p *testProxy) markStopped() { p.stopOnce.Do(func() {}) }

// waitServe waits for Serve to return after a Shutdown.
func (p *testProxy) waitServe(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve() = %v, want http.ErrServerClosed", err)
		}
	case <-time.After(testTimeout):
		t.Error("Serve did not return after Shutdown")
	}
}

// client returns an HTTP client that trusts the proxy's CA and connects
// to the proxy whatever the URL's host, so URLs can name a.test. With h2
// false it speaks HTTP/1.1 only.
func (p *testProxy) client(t *testing.T, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: p.pki.roots},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			d := net.Dialer{Timeout: testTimeout}
			return d.DialContext(ctx, "tcp", p.addr)
		},
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

// seen is what an echo backend reports about the request it received.
type seen struct {
	Backend string // the backend's label
	Host    string
	Path    string
	XFF     string
	XProto  string
	XHost   string
	XRealIP string
	XPort   string
	// Passed are the request's other headers that name "forward",
	// "client", "ip" or "url", or hold an underscore, sorted.
	Passed string
}

// startEcho starts a plain-HTTP backend on 127.0.0.1 that answers every
// request with a JSON seen, labelled label.
func startEcho(t *testing.T, label string) *httptest.Server {
	t.Helper()
	b := httptest.NewServer(echoHandler(label))
	t.Cleanup(b.Close)
	return b
}

func echoHandler(label string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{
			Backend: label,
			Host:    r.Host,
			Path:    r.URL.RequestURI(),
			XFF:     r.Header.Get("X-Forwarded-For"),
			XProto:  r.Header.Get("X-Forwarded-Proto"),
			XHost:   r.Header.Get("X-Forwarded-Host"),
			XRealIP: r.Header.Get("X-Real-Ip"),
			XPort:   r.Header.Get("X-Forwarded-Port"),
			Passed:  passed(r.Header),
		})
	})
}

// passed lists the headers of h, but those the proxy sets, that name
// "forward", "client", "ip", "url", "host" or "https", or hold an
// underscore.
func passed(h http.Header) string {
	var names []string
	for k := range h {
		switch k {
		case "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Real-Ip":
			continue
		}
		l := strings.ToLower(k)
		if strings.ContainsAny(l, "_") || strings.Contains(l, "forward") || strings.Contains(l, "client") ||
			strings.HasSuffix(l, "-ip") || strings.HasSuffix(l, "-url") || strings.HasSuffix(l, "-host") || strings.HasSuffix(l, "-https") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// get fetches url with c and decodes the echo backend's answer. It also
// returns the response's HTTP major version.
func get(t *testing.T, c *http.Client, url string, hdr http.Header) (seen, int) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %q", url, resp.Status, body)
	}
	var s seen
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, body)
	}
	return s, resp.ProtoMajor
}

// mustRouter is proxy.NewRouter for configurations that must be valid.
func mustRouter(t *testing.T, c proxy.RouterConfig) *proxy.Router {
	t.Helper()
	rt, err := proxy.NewRouter(c)
	if err != nil {
		t.Fatalf("NewRouter(%+v) = %v", c, err)
	}
	return rt
}

// newLogger returns a logger writing text at Debug level into a buffer.
func newLogger() (*slog.Logger, *testsvc.Buffer) {
	b := &testsvc.Buffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// freeAddr returns a loopback address on which nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// wsAccept computes Sec-WebSocket-Accept for key (RFC 6455 §4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}
