package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// backend is a plain-HTTP server that records what it was sent.
type backend struct {
	url  string
	mu   sync.Mutex
	seen []http.Header
	host []string
}

func newBackend(t *testing.T, body string) *backend {
	t.Helper()
	b := &backend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.seen = append(b.seen, r.Header.Clone())
		b.host = append(b.host, r.Host)
		b.mu.Unlock()
		fmt.Fprint(w, body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.url = "http://" + ln.Addr().String()
	return b
}

func (b *backend) last() (string, http.Header) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return "", nil
	}
	return b.host[len(b.host)-1], b.seen[len(b.seen)-1]
}

// startProxy runs "certkeeper proxy args..." and waits until it listens.
func startProxy(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	return startProxyLogged(t, args...).cmd
}

// startProxyLogged is startProxy that keeps the proxy's output.
func startProxyLogged(t *testing.T, args ...string) *proxyProc {
	t.Helper()
	return startLogged(t, binary, "proxy listening", append([]string{"proxy"}, args...)...)
}

// startProxyAt runs "bin proxy args..." and waits until it listens. The
// returned func gives its output so far, and that of processes it started
// with the same stderr.
func startProxyAt(t *testing.T, bin string, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	p := startLogged(t, bin, "proxy listening", append([]string{"proxy"}, args...)...)
	return p.cmd, p.output
}

// startListening runs "certkeeper args..." until the test ends and waits
// until its stderr says ready; its output is logged if the test fails.
func startListening(t *testing.T, ready string, args ...string) *exec.Cmd {
	t.Helper()
	return startLogged(t, binary, ready, args...).cmd
}

// proxyProc is a running certkeeper and the file its stderr goes to.
type proxyProc struct {
	cmd     *exec.Cmd
	logFile string
}

// output returns what the process (and any successor it started with the
// same stderr) has written so far.
func (p *proxyProc) output() string {
	data, _ := os.ReadFile(p.logFile)
	return string(data)
}

// startLogged runs "bin args..." until the test ends and waits until its
// stderr says ready. Its stderr is a file, not a pipe, so that a successor
// outliving it (an upgrade) can still write to it; it is logged if the
// test fails.
func startLogged(t *testing.T, bin, ready string, args ...string) *proxyProc {
	t.Helper()
	p := &proxyProc{cmd: exec.Command(bin, args...), logFile: filepath.Join(t.TempDir(), args[0]+".log")}
	f, err := os.Create(p.logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.cmd.Stderr = f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s output:\n%s", args[0], p.output())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(p.output(), ready); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening within 30 s", args[0])
		}
	}
	return p
}

// writeRoots writes Pebble's issuing roots as a PEM file for curl.
func writeRoots(t *testing.T, ca *testca.CA) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pebble-roots.pem")
	var data []byte
	for _, c := range ca.IssuingRoots(t) {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(f, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func curl(t *testing.T, rootsFile, name string, port int, extra ...string) (body, version string) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		testsvc.Unavailable(t, "curl", "install it: apt-get install curl", err)
	}
	p := strconv.Itoa(port)
	args := append([]string{"-sS", "--max-time", "30", "--cacert", rootsFile, "--resolve", name + ":" + p + ":127.0.0.1",
		"-w", "\n%{http_version}", "https://" + name + ":" + p + "/x"}, extra...)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	return s[:i], s[i+1:]
}

func serialOf(t *testing.T, port int, name string, roots *x509.CertPool) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
		&tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestProxy: curl through the proxy reaches the backend with Host and
// X-Forwarded-* set, over HTTP/2; --route sends a name to its own backend;
// restarted on the same storage, the proxy serves the same certificate and
// places no new order; SIGTERM stops it cleanly.
func TestProxy(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	roots := writeRoots(t, ca)
	main, other := newBackend(t, "hello from a"), newBackend(t, "hello from b")
	storageDir := t.TempDir()
	args := []string{
		"--tls-addr", "127.0.0.1:" + strconv.Itoa(ca.TLSPort()),
		"--backend", main.url, "--route", "b.test=" + other.url,
		"--allow", "a.test", "--allow", "b.test",
		"--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", storageDir,
	}
	cmd := startProxy(t, args...)

	body, version := curl(t, roots, "a.test", ca.TLSPort(), "--http2")
	if body != "hello from a" {
		t.Errorf("body through the proxy = %q, want the backend's", body)
	}
	if version != "2" {
		t.Errorf("curl --http2 got HTTP/%s, want 2", version)
	}
	host, h := main.last()
	// curl sends the port in Host on a non-default port; the name is what matters.
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host != "a.test" || h.Get("X-Forwarded-For") != "127.0.0.1" || h.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("backend saw Host %q, X-Forwarded-For %q, X-Forwarded-Proto %q", host, h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Proto"))
	}
	if body, _ := curl(t, roots, "b.test", ca.TLSPort()); body != "hello from b" {
		t.Errorf("b.test went to %q, want its own backend", body)
	}
	pool := x509.NewCertPool()
	for _, c := range ca.IssuingRoots(t) {
		pool.AddCert(c)
	}
	serial := serialOf(t, ca.TLSPort(), "a.test", pool)
	orders := ca.Orders()

	// SIGTERM drains and exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("proxy exit after SIGTERM: %v", err)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("proxy did not exit within 35 s of SIGTERM")
	}

	startProxy(t, args...)
	if got := serialOf(t, ca.TLSPort(), "a.test", pool); got != serial {
		t.Errorf("after a restart the serial is %s, want %s", got, serial)
	}
	if n := ca.Orders(); n != orders {
		t.Errorf("the restarted proxy placed %d new orders, want 0", n-orders)
	}
	// A name nobody allowed fails its handshake.
	if _, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(ca.TLSPort()),
		&tls.Config{ServerName: "evil.test", RootCAs: pool}); err == nil {
		t.Error("handshake for a name outside --allow succeeded")
	}

}

// TestProxyRSAFallbackAndReload: with --rsa-fallback an RSA-only client
// (openssl s_client -sigalgs RSA+SHA256) gets an RSA certificate and a
// modern one ECDSA; SIGHUP reloads the config's routes without a restart.
func TestProxyRSAFallbackAndReload(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		testsvc.Unavailable(t, "openssl", "install it: apt-get install openssl", err)
	}
	first, second := newBackend(t, "first"), newBackend(t, "second")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "proxy.yaml")
	port := testsvc.FreePort(t)
	writeCfg := func(backend string) {
		cfg := fmt.Sprintf("tls_addr: 127.0.0.1:%d\nbackend: %s\nallow: [a.test]\nca: [local]\nstorage: %s\nrsa_fallback: true\n",
			port, backend, filepath.Join(dir, "state"))
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(first.url)
	cmd := startProxy(t, "--config", cfgFile)

	keyBits := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		all := append([]string{"s_client", "-connect", "127.0.0.1:" + strconv.Itoa(port), "-servername", "a.test"}, args...)
		c := exec.CommandContext(ctx, openssl, all...)
		c.Stdin = strings.NewReader("")
		out, _ := c.CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "Server public key is") {
				return strings.TrimSpace(line)
			}
		}
		t.Fatalf("openssl s_client %v printed no server key:\n%s", args, out)
		return ""
	}
	if got := keyBits("-tls1_2", "-sigalgs", "RSA+SHA256"); !strings.Contains(got, "2048 bit") {
		t.Errorf("RSA-only client: %q, want a 2048-bit RSA key", got)
	}
	if got := keyBits(); !strings.Contains(got, "256 bit") {
		t.Errorf("modern client: %q, want a 256-bit ECDSA key", got)
	}

	rootPEM := ck(t, 30*time.Second, "ca", "root", "--storage", filepath.Join(dir, "state")).stdout
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, []byte(rootPEM), 0o644); err != nil {
		t.Fatal(err)
	}
	if body, _ := curl(t, rootFile, "a.test", port); body != "first" {
		t.Fatalf("before reload: %q", body)
	}
	writeCfg(second.url)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, _ := curl(t, rootFile, "a.test", port)
		if body == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the proxy still sends a.test to %q", body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cmd.ProcessState != nil {
		t.Error("the proxy exited on SIGHUP")
	}
}

// TestReadmeRunCommand: the README's run command is the proxy's
// development mode, and that mode serves localhost from the local CA in
// front of the backend (here on free ports instead of 8443 and 8080).
func TestReadmeRunCommand(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "\n```sh\ngo run ./cmd/certkeeper proxy\n```\n") {
		t.Fatal("README.md's run command is not `go run ./cmd/certkeeper proxy`")
	}
	be := newBackend(t, "dev backend")
	dir := t.TempDir()
	port := testsvc.FreePort(t)
	p := startProxyLogged(t, "--storage", dir, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--backend", be.url)
	// The root as the banner says to get it (trial: it left out --storage).
	if want := "or for one client: certkeeper ca root --storage " + dir + " > root.pem;"; !strings.Contains(p.output(), want) {
		t.Errorf("the development mode banner lacks %q:\n%s", want, p.output())
	}
	root := ck(t, 30*time.Second, "ca", "root", "--storage", dir)
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, []byte(root.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if body, _ := curl(t, rootFile, "localhost", port); body != "dev backend" {
		t.Errorf("development mode served %q, want the backend's body", body)
	}
}

// TestDevModeNoBackend: development mode with nothing on its backend says so
// at start, naming the backend; with a backend it says nothing of the kind.
func TestDevModeNoBackend(t *testing.T) {
	nothing := "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	p := startProxyLogged(t, "--storage", t.TempDir(), "--tls-addr", "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)), "--backend", nothing)
	if want := "nothing answers on " + nothing + " yet"; !strings.Contains(p.output(), want) {
		t.Errorf("development mode with no backend did not say %q:\n%s", want, p.output())
	}
	be := newBackend(t, "dev backend")
	p = startProxyLogged(t, "--storage", t.TempDir(), "--tls-addr", "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)), "--backend", be.url)
	if strings.Contains(p.output(), "nothing answers") {
		t.Errorf("development mode warned about a backend that answers:\n%s", p.output())
	}
}

// TestProxyNoSNI: a client that connects to the proxy by IP address sends
// no SNI; with no --default-name its handshake fails, and the proxy's log
// says why and which flag serves it (the Manager's error names its field;
// the proxy's log adds the flag), once, however many such clients come.
func TestProxyNoSNI(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	p := startProxyLogged(t, "--tls-addr", addr, "--ca", "local", "--allow", "localhost", "--storage", t.TempDir(), "--backend", takenAddr(t))
	for range 3 {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			t.Fatal("a handshake without SNI succeeded without --default-name")
		}
	}
	const want = "no server name (SNI)"
	if !within(5*time.Second, func() bool { return strings.Contains(p.output(), want) }) ||
		strings.Count(p.output(), want) != 1 || !strings.Contains(p.output(), "give --default-name NAME") {
		t.Errorf("the proxy's log does not say once why the handshakes failed and what to give:\n%s", p.output())
	}
}

// TestProxyConnLimits: the proxy's --max-conns-per-client and --max-conns
// reach its HTTPS listener: a client address at its limit gets its next
// connection closed before the handshake while another address is served,
// until the listener's own limit; each limit is logged once and counted
// on --metrics-addr (certkeeper_connections_refused_total, there at 0
// from the start). A negative limit is refused.
func TestProxyConnLimits(t *testing.T) {
	if r := ck(t, 30*time.Second, "proxy", "--check-config", "--max-conns-per-client", "-1"); r.code != 1 || !strings.Contains(r.stderr, "--max-conns-per-client -1: must be at least 1") {
		t.Errorf("--check-config --max-conns-per-client -1: exit %d, stderr %q; want 1 and the flag named", r.code, r.stderr)
	}
	if _, err := testsvc.OtherLoopback(); err != nil {
		testsvc.Unavailable(t, "a second loopback address", "127.0.0.2 is on lo on Linux; run this test there", err)
	}
	port, metricsAddr := testsvc.FreePort(t), "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t))
	p := startProxyLogged(t, "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(), "--backend", newBackend(t, "ok").url,
		"--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--max-conns", "3", "--max-conns-per-client", "2", "--metrics-addr", metricsAddr)
	refused := func(reason string) (float64, bool) {
		return metricValue(scrape(t, "http://"+metricsAddr+"/metrics"), "certkeeper_connections_refused_total",
			map[string]string{"listener": "127.0.0.1:" + strconv.Itoa(port), "reason": reason})
	}
	if n, ok := refused("per_client"); !ok || n != 0 {
		t.Errorf("at start, certkeeper_connections_refused_total{reason=per_client} of the HTTPS listener = %v (%v), want 0", n, ok)
	}
	handshake := func(from string) error {
		d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := tls.DialWithDialer(d, "tcp", "127.0.0.1:"+strconv.Itoa(port), &tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return err
	}
	for i := range 2 {
		if err := handshake("127.0.0.1"); err != nil {
			t.Fatalf("connection %d of 2 from 127.0.0.1: %v", i+1, err)
		}
	}
	if err := handshake("127.0.0.1"); err == nil {
		t.Error("a third connection from 127.0.0.1 was served with --max-conns-per-client 2")
	}
	if err := handshake("127.0.0.2"); err != nil {
		t.Errorf("127.0.0.2 refused while 127.0.0.1 was at its limit: %v", err)
	}
	if err := handshake("127.0.0.2"); err == nil {
		t.Error("a fourth connection was served with --max-conns 3")
	}
	for _, want := range []string{"connection limit of one client reached", "client=127.0.0.1/32", "connection limit reached", "max_conns=3"} {
		if !strings.Contains(p.output(), want) {
			t.Errorf("the log does not say %q", want)
		}
	}
	for _, reason := range []string{"per_client", "max_conns"} {
		if n, ok := refused(reason); !ok || n != 1 {
			t.Errorf("certkeeper_connections_refused_total{reason=%s} of the HTTPS listener = %v (%v), want 1", reason, n, ok)
		}
	}
}

// TestProxyHTTPAddrIsDefaultBackend: --http-addr on port 80 without
// --backend is refused: the default backend (port 80 of the address the
// client connected to) would be the proxy's own redirect to HTTPS.
func TestProxyHTTPAddrIsDefaultBackend(t *testing.T) {
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--allow", "a.example", "--http-addr", ":80")
	if r.code != 1 || !strings.Contains(r.stderr, "--http-addr :80 takes port 80, where requests go without --backend") {
		t.Errorf("--http-addr :80 without --backend: exit %d, stderr:\n%s\nwant it refused naming --backend", r.code, r.stderr)
	}
	for _, more := range [][]string{{"--backend", "127.0.0.1:8080"}, {"--route", "a.example=127.0.0.1:8080"}} {
		if r := ck(t, 30*time.Second, append([]string{"proxy", "--check-config", "--allow", "a.example", "--http-addr", ":80"}, more...)...); r.code != 0 {
			t.Errorf("--http-addr :80 %s: exit %d, stderr:\n%s", more, r.code, r.stderr)
		}
	}
}

// TestProxyProtocolFrom: behind a TCP load balancer that sends PROXY
// protocol headers (--proxy-protocol-from), the backend gets the client
// address the balancer saw in X-Forwarded-For, over HTTPS and on
// --http-addr; a prefix that does not parse is refused.
func TestProxyProtocolFrom(t *testing.T) {
	if r := ck(t, 30*time.Second, "proxy", "--check-config", "--proxy-protocol-from", "10.0.0.0/33"); r.code != 1 || !strings.Contains(r.stderr, `--proxy-protocol-from "10.0.0.0/33"`) {
		t.Errorf("a bad prefix: exit %d, stderr %q; want 1 naming the flag", r.code, r.stderr)
	}
	b := newBackend(t, "ok")
	port, httpPort := testsvc.FreePort(t), testsvc.FreePort(t)
	startProxy(t, "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(), "--backend", b.url,
		"--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--http-addr", "127.0.0.1:"+strconv.Itoa(httpPort), "--proxy-protocol-from", "127.0.0.1")
	const header = "PROXY TCP4 198.51.100.9 127.0.0.1 40000 443\r\n"
	dial := func(port int) net.Conn {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte(header)); err != nil {
			t.Fatal(err)
		}
		return c
	}
	tc := tls.Client(dial(port), &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if _, err := tc.Write([]byte("GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, h := b.last(); resp.StatusCode != http.StatusOK || h.Get("X-Forwarded-For") != "198.51.100.9" {
		t.Errorf("through the balancer: %s, X-Forwarded-For %q; want 200 and 198.51.100.9", resp.Status, h.Get("X-Forwarded-For"))
	}
	plain := dial(httpPort)
	if _, err := plain.Write([]byte("GET /.well-known/acme-challenge/none HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(plain), nil); err != nil {
		t.Errorf("--http-addr through the balancer: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("--http-addr through the balancer: %s, want 404 for a token nobody presented", resp.Status)
		}
	}
	// A client that named --http-addr's port is redirected to
	// --tls-addr's (a trial's went to 443, where nothing listened).
	plain = dial(httpPort)
	host := "a.test:" + strconv.Itoa(httpPort)
	if _, err := plain.Write([]byte("GET /p?q=1 HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	want := "https://a.test:" + strconv.Itoa(port) + "/p?q=1"
	if resp, err := http.ReadResponse(bufio.NewReader(plain), nil); err != nil {
		t.Errorf("--http-addr redirect: %v", err)
	} else if resp.Body.Close(); resp.Header.Get("Location") != want {
		t.Errorf("GET http://%s/p?q=1: %s to %q, want a redirect to %s", host, resp.Status, resp.Header.Get("Location"), want)
	}
}

// TestProxyHTTPSBackend: an https:// backend with a self-signed
// certificate is reached once --backend-ca names that certificate (curl,
// through the proxy, gets the backend's page), and not
// without it: the check stays on (502). A file with no certificate is an
// error naming the flag.
func TestProxyHTTPSBackend(t *testing.T) {
	be := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "https backend")
	}))
	defer be.Close()
	caFile := filepath.Join(t.TempDir(), "backend.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: be.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	st := t.TempDir()
	roots := filepath.Join(t.TempDir(), "root.pem")
	if r := ck(t, 30*time.Second, "ca", "root", "--storage", st); r.code != 0 {
		t.Fatalf("ca root: exit %d\n%s", r.code, r.stderr)
	} else if err := os.WriteFile(roots, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, trusted := range []bool{true, false} {
		port := testsvc.FreePort(t)
		args := []string{"--tls-addr", "127.0.0.1:" + strconv.Itoa(port), "--ca", "local", "--allow", "a.test", "--storage", st, "--backend", be.URL}
		if trusted {
			args = append(args, "--backend-ca", caFile)
		}
		p := startProxyLogged(t, args...)
		body, _ := curl(t, roots, "a.test", port)
		if trusted && body != "https backend" || !trusted && !strings.Contains(body, "502") {
			t.Errorf("with --backend-ca %v: got %q, want %s", trusted, body, map[bool]string{true: "the backend's page", false: "the 502 page"}[trusted])
		}
		if !trusted && !within(5*time.Second, func() bool { return strings.Contains(p.output(), "certificate signed by unknown authority") }) {
			t.Errorf("the proxy did not log why the backend was unreachable:\n%s", p.output())
		}
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--ca", "local", "--allow", "a.test", "--backend", be.URL, "--backend-ca", roots+".missing")
	if r.code == 0 || !strings.Contains(r.stderr, "--backend-ca "+roots+".missing: ") {
		t.Errorf("a missing --backend-ca: exit %d, want an error naming the flag\n%s", r.code, r.stderr)
	}
}

// TestProxyBackendTimeoutAndDrain: --backend-timeout is how long a backend
// may take to start its answer (a 504 page after it; it was a fixed 60 s, a
// trial's report export could not be proxied), and --drain how long a stop
// waits for open requests, which then get a 503 page saying the proxy is
// restarting (it was a fixed 30 s, and a 502 page blaming the backend).
// Neither takes zero. --access-log logs each request, and the metrics count
// them (a trial found the proxy blind to its own traffic).
func TestProxyBackendTimeoutAndDrain(t *testing.T) {
	for _, flag := range []string{"--backend-timeout", "--drain"} {
		r := ck(t, 30*time.Second, "proxy", "--check-config", "--allow", "a.test", "--ca", "local", "--storage", t.TempDir(), flag, "0s")
		if r.code != 1 || !strings.Contains(r.stderr, flag+" 0s: ") {
			t.Errorf("%s 0s: exit %d, stderr:\n%s", flag, r.code, r.stderr)
		}
	}
	seen := make(chan string, 2)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.URL.Path
		select { // answers nothing until the proxy gives up on it
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}))
	t.Cleanup(slow.Close)
	addr, metricsAddr := "127.0.0.1:"+strconv.Itoa(freeLoopbackPort(t)), "127.0.0.1:"+strconv.Itoa(freeLoopbackPort(t))
	p := startProxyLogged(t, "--tls-addr", addr, "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(), "--backend", slow.URL,
		"--backend-timeout", "3s", "--drain", "1s", "--access-log", "--metrics-addr", metricsAddr)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"}, // the local CA's trust is not what this tests
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	get := func(path string) (int, http.Header, time.Duration, error) {
		start := time.Now()
		resp, err := client.Get("https://a.test" + path)
		if err != nil {
			return 0, nil, time.Since(start), err
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header, time.Since(start), nil
	}
	if code, _, took, err := get("/slow"); err != nil || code != http.StatusGatewayTimeout || took < 3*time.Second || took > 20*time.Second {
		t.Errorf("a backend silent for longer than --backend-timeout 3s: %d after %v (%v); want 504 after 3 s", code, took, err)
	}
	if !within(5*time.Second, func() bool {
		return strings.Contains(p.output(), "msg=request name=a.test remote_ip=127.0.0.1 method=GET path=/slow")
	}) ||
		!strings.Contains(p.output(), "status=504") {
		t.Errorf("--access-log: no line for the request, with its 504:\n%s", p.output())
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scraped, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`certkeeper_proxy_requests_total{code="5xx"} 1`, `certkeeper_proxy_backend_failures_total{reason="timeout"} 1`} {
		if !strings.Contains(string(scraped), want) {
			t.Errorf("the metrics lack %q:\n%s", want, scraped)
		}
	}
	type result struct {
		code  int
		retry string
		err   error
	}
	res := make(chan result, 1)
	go func() {
		code, h, _, err := get("/hang")
		res <- result{code, h.Get("Retry-After"), err}
	}()
	for path := ""; path != "/hang"; {
		select {
		case path = <-seen:
		case <-time.After(30 * time.Second):
			t.Fatal("the request did not reach the backend")
		}
	}
	stopped := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		if r.err != nil || r.code != http.StatusServiceUnavailable || r.retry == "" {
			t.Errorf("a request waiting on its backend at a stop: %d (Retry-After %q, %v); want a 503 page with Retry-After", r.code, r.retry, r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer to the request waiting at the stop")
	}
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	select {
	case err := <-exited:
		if took := time.Since(stopped); err != nil || took > 10*time.Second {
			t.Errorf("the proxy stopped after %v (%v); want within a few seconds of --drain 1s, exit 0", took, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the proxy did not stop")
	}
	if !strings.Contains(p.output(), "drain limit (1 s) reached") || !strings.Contains(p.output(), "(requests in progress cut, WebSockets included: 1)") {
		t.Errorf("the stop does not say the drain limit was reached, and that it cut the request:\n%s", p.output())
	}
}

// TestProxyRouteAllows: a --route needs no --allow: its name gets a
// certificate and its backend, with no other policy given (a trial's
// route without allow was a site whose every handshake failed, after a
// warning), and the start-up summary says so; a name not routed gets
// none. A --route ends development mode, as --allow does.
func TestProxyRouteAllows(t *testing.T) {
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--route", "r.test=127.0.0.1:1", "--storage", t.TempDir())
	if r.code != 0 || strings.Contains(r.stderr, "development mode") {
		t.Errorf("a --route alone: exit %d; want production mode (a route names the site):\n%s", r.code, r.stderr)
	}
	b := newBackend(t, "hello from r")
	addr := "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))
	p := startProxyLogged(t, "--tls-addr", addr, "--ca", "local", "--storage", t.TempDir(), "--route", "r.test="+b.url)
	if !strings.Contains(p.output(), "the routed r.test (--route)") || strings.Contains(p.output(), "no --allow") {
		t.Errorf("the summary does not say the routed name may get a certificate:\n%s", p.output())
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the local CA's trust is not what this tests
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	resp, err := client.Get("https://r.test/")
	if err != nil {
		t.Fatalf("the routed name: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from r" || resp.TLS == nil || resp.TLS.PeerCertificates[0].VerifyHostname("r.test") != nil {
		t.Errorf("the routed name got %q, with a certificate for it: %v", body, resp.TLS != nil && resp.TLS.PeerCertificates[0].VerifyHostname("r.test") == nil)
	}
	if resp, err := client.Get("https://other.test/"); err == nil {
		resp.Body.Close()
		t.Error("a name neither routed nor allowed got a certificate")
	}
}
