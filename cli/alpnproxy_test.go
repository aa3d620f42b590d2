package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// alpnProxy is a running "certkeeper alpn-proxy start".
type alpnProxy struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	err    error         // cmd.Wait's result, once exited is closed
	logs   *testsvc.Buffer
}

// startALPNProxy runs the binary's alpn-proxy start with args and waits
// until it has written pidfile (it does so once it listens).
func startALPNProxy(t *testing.T, pidfile string, args ...string) *alpnProxy {
	t.Helper()
	return startALPNProxyArgs(t, pidfile, append([]string{"alpn-proxy", "start", "--pidfile", pidfile}, args...)...)
}

// startALPNProxyArgs runs the binary with args, which start an alpn-proxy
// writing pidfile, and waits until it has written it.
func startALPNProxyArgs(t *testing.T, pidfile string, args ...string) *alpnProxy {
	t.Helper()
	p := &alpnProxy{exited: make(chan struct{}), logs: &testsvc.Buffer{}}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("alpn-proxy output:\n%s", p.logs)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := os.Stat(pidfile); err == nil {
			return p
		}
		select {
		case <-p.exited:
			t.Fatalf("alpn-proxy start exited early: %v\n%s", p.err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("alpn-proxy did not write its pidfile within 30 s")
		}
	}
}

// newWebServer is the fallback: an HTTPS server with a self-signed
// certificate, as a site's real web server on :443 would be.
func newWebServer(t *testing.T) (*httptest.Server, *x509.CertPool) {
	t.Helper()
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "web server")
	}))
	web.Config.ErrorLog = log.New(io.Discard, "", 0) // bad first packets are expected
	web.StartTLS()
	t.Cleanup(web.Close)
	pool := x509.NewCertPool()
	pool.AddCert(web.Certificate())
	return web, pool
}

// TestALPNProxyIssue is the acceptance test: a web server behind
// alpn-proxy answers every one of a continuous stream of HTTPS requests
// while cert issue obtains a certificate through the proxy from Pebble by
// tls-alpn-01; then stop waits for the connection still open and removes the
// pidfile.
func TestALPNProxyIssue(t *testing.T) {
	web, webPool := newWebServer(t)
	listenPort, alpnPort := testsvc.FreePort(t), testsvc.FreePort(t)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(listenPort))
	alpnAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(alpnPort))
	ca := testca.Start(t, testca.Options{TLSPort: listenPort})
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	proxy := startALPNProxy(t, pidfile, "--listen", listen, "--alpn", alpnAddr, "--fallback", web.Listener.Addr().String())

	// The stream: one new connection per request, so each is routed.
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: webPool}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stopStream := make(chan struct{})
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		for {
			select {
			case <-stopStream:
				return
			case <-time.After(5 * time.Millisecond):
			}
			sent.Add(1)
			resp, err := client.Get("https://" + listen + "/")
			if err == nil {
				var body []byte
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && (resp.StatusCode != 200 || string(body) != "web server") {
					err = fmt.Errorf("status %d, body %q", resp.StatusCode, body)
				}
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		}
	}()

	for deadline := time.Now().Add(10 * time.Second); sent.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the stream is flowing before issuance starts
	}
	out := t.TempDir()
	r := ck(t, 2*time.Minute, "cert", "issue", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--storage", t.TempDir(), "--out-dir", out, "--profile", "default",
		"--challenge", "tls-alpn-01", "--tls-alpn-addr", alpnAddr, "-d", "a.test")
	time.Sleep(200 * time.Millisecond) // a few requests after issuance too
	close(stopStream)
	<-streamDone
	if r.code != 0 {
		t.Fatalf("cert issue: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	verifyChain(t, readPair(t, out, "a.test"), ca.IssuingRootPool(t), "a.test")
	t.Logf("%d requests through the proxy around an issuance of %s, %d failed", sent.Load(), r.took, failed.Load())
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests through the proxy failed; first: %v", n, sent.Load(), firstErr.Load())
	}
	if sent.Load() < 10 {
		t.Errorf("only %d requests sent during issuance", sent.Load())
	}

	// A connection open at stop keeps working, and stop waits for it.
	conn, err := tls.Dial("tcp", listen, &tls.Config{RootCAs: webPool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	get(t, conn, br)
	if r := ck(t, 30*time.Second, "alpn-proxy", "status", "--pidfile", pidfile); r.code != 0 || !strings.Contains(r.stdout, "alpn-proxy is running (process ") {
		t.Errorf("status while running: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	stopped := make(chan result, 1)
	go func() { stopped <- ckNoFatal(t, 40*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile) }()
	select {
	case r := <-stopped:
		t.Fatalf("stop returned with a connection open: exit %d, %s%s", r.code, r.stdout, r.stderr)
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := os.Stat(pidfile); err != nil {
		t.Errorf("pidfile gone while a connection is still open: %v", err)
	}
	get(t, conn, br) // still served during the drain
	conn.Close()
	select {
	case r := <-stopped:
		if r.code != 0 || !strings.Contains(r.stdout, "stopped") {
			t.Errorf("stop: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("stop did not return within 20 s of the last connection closing")
	}
	select {
	case <-proxy.exited:
		if proxy.err != nil {
			t.Errorf("alpn-proxy start exited with %v", proxy.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alpn-proxy start still running after stop returned")
	}
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("pidfile after stop: %v, want it removed", err)
	}
	if logs := proxy.logs.String(); !strings.Contains(logs, "to --alpn") || strings.Contains(logs, " 0 to --alpn") {
		t.Errorf("proxy routed no connection to --alpn:\n%s", logs)
	}
	// Stopping what is not running is not an error.
	if r := ck(t, 30*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 || !strings.Contains(r.stdout, "not running") {
		t.Errorf("second stop: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := ck(t, 30*time.Second, "alpn-proxy", "status", "--pidfile", pidfile); r.code != 1 || !strings.Contains(r.stderr, "not running (no "+pidfile+")") {
		t.Errorf("status after stop: exit %d, stdout %q, stderr %q; want 1 and not running", r.code, r.stdout, r.stderr)
	}
}

// get sends one HTTP/1.1 request on conn and checks the web server answered.
func get(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "web server" {
		t.Fatalf("response %q, %v", body, err)
	}
}

// ckNoFatal is ck for another goroutine: it reports a failure to start as
// exit code -1 instead of calling t.Fatal.
func ckNoFatal(t *testing.T, timeout time.Duration, args ...string) result {
	cmd := exec.Command(binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return result{code: -1, stderr: err.Error()}
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		r.code = -1
	}
	return r
}

// TestALPNProxyBadFirstPackets: what is not a ClientHello reaches the web
// server at once, as it would without the proxy.
func TestALPNProxyBadFirstPackets(t *testing.T) {
	web, _ := newWebServer(t)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	startALPNProxy(t, pidfile, "--listen", listen, "--alpn", "127.0.0.1:1", "--fallback", web.Listener.Addr().String())
	tests := []struct {
		name    string
		payload []byte
		want    string // in what the web server answers
	}{
		// Go's HTTPS server recognises HTTP and says so.
		{name: "not TLS", payload: []byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"), want: "HTTP/1.0 400 Bad Request"},
		// A record too large for TLS: the web server sends an alert and closes.
		{name: "oversized", payload: append([]byte{0x16, 3, 1, 0xff, 0xff}, make([]byte, 64)...), want: "\x15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.DialTimeout("tcp", listen, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			c.SetDeadline(start.Add(4 * time.Second)) // under the proxy's 5 s read deadline
			if _, err := c.Write(tt.payload); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(c)
			if !strings.Contains(string(got), tt.want) {
				t.Errorf("answer %q after %v, want it to contain %q", got, time.Since(start), tt.want)
			}
		})
	}
	if r := ck(t, 40*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 {
		t.Errorf("stop: exit %d, %s", r.code, r.stderr)
	}
}

// TestALPNProxyUsage: a second start on the same pidfile refuses while the
// first runs, and bad addresses are usage errors.
func TestALPNProxyUsage(t *testing.T) {
	if r := ck(t, 30*time.Second, "alpn-proxy", "start", "--fallback", "nope"); r.code != 2 {
		t.Errorf("--fallback nope: exit %d, want 2", r.code)
	}
	// An --idle-timeout that cuts any connection quiet for a moment, and the
	// iptables flags without --iptables, which did nothing (an alpn-proxy
	// trial), are refused too.
	for _, bad := range [][]string{{"--max-conns", "0"}, {"--max-conns-per-client", "0"}, {"--idle-timeout", "-1s"}, {"--idle-timeout", "1ms"},
		{"--listen", "21443"}, {"--alpn", "127.0.0.1:21443", "--listen", ":21443"}, {"--fallback", "localhost:21443", "--listen", ":21443"},
		{"--rulespec", ""}, {"--no-ipv6", "--listen", "127.0.0.1:0"}} {
		if r := ck(t, 30*time.Second, append([]string{"alpn-proxy", "start"}, bad...)...); r.code != 2 || !strings.Contains(r.stderr, bad[0]) {
			t.Errorf("%s %s: exit %d, stderr %q; want 2 naming the flag", bad[0], bad[1], r.code, r.stderr)
		}
	}
	// A route to the proxy's own address would send every connection back
	// to it (alpnproxy.Loops).
	if r := ck(t, 30*time.Second, "alpn-proxy", "start", "--listen", ":21443", "--alpn", "127.0.0.1:21443"); !strings.Contains(r.stderr, "--alpn 127.0.0.1:21443 is this proxy's own --listen :21443") {
		t.Errorf("--alpn to itself: exit %d, stderr %q; want it refused as a loop", r.code, r.stderr)
	}
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	startALPNProxy(t, pidfile, "--listen", listen)
	other := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	if r := ck(t, 30*time.Second, "alpn-proxy", "start", "--pidfile", pidfile, "--listen", other); r.code != 1 || !strings.Contains(r.stderr, "already running") || !strings.Contains(r.stderr, "alpn-proxy stop --pidfile "+pidfile) {
		t.Errorf("second start: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := ck(t, 40*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 {
		t.Errorf("stop: exit %d, %s", r.code, r.stderr)
	}
}

// TestALPNProxyLimits: with --max-conns 2, a third connection is closed at
// once while two are open; with --idle-timeout, a spliced connection that
// carries no bytes is closed.
func TestALPNProxyLimits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // an echo server as the fallback
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	const idle = 500 * time.Millisecond
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	startALPNProxy(t, pidfile, "--listen", listen, "--alpn", "127.0.0.1:1", "--fallback", ln.Addr().String(),
		"--max-conns", "2", "--idle-timeout", idle.String())
	dial := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", listen, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reads c until it closes, failing if that takes over d.
	closedWithin := func(c net.Conn, d time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(d))
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("connection not closed within %v: read %q, %v", d, got, err)
		}
		return time.Since(start)
	}

	spliced := dial()
	if _, err := io.WriteString(spliced, "hello"); err != nil {
		t.Fatal(err)
	}
	echo := make([]byte, 5)
	if _, err := io.ReadFull(spliced, echo); err != nil || string(echo) != "hello" {
		t.Fatalf("echo through the proxy: %q, %v", echo, err)
	}
	// Silent: the proxy waits up to 5 s for its ClientHello. Accepted
	// before the next one: the listen queue is first in, first out.
	silent := dial()
	// Closed with a reset, which may reach the client while it connects.
	start := time.Now()
	if c, err := net.DialTimeout("tcp", listen, 5*time.Second); err == nil {
		defer c.Close()
		closedWithin(c, 2*time.Second)
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connecting beyond --max-conns: %v, want a connection closed at once", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the third connection closed after %v, want at once (--max-conns 2)", took)
	}
	if took := closedWithin(spliced, idle+3*time.Second); took < idle-100*time.Millisecond {
		t.Errorf("the idle connection closed after %v, before --idle-timeout %v", took, idle)
	}
	silent.Close() // or stop drains it until its read deadline
	if r := ck(t, 40*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 {
		t.Errorf("stop: exit %d, %s", r.code, r.stderr)
	}
}

// TestALPNProxyLogsOnce: at --log-level info, alpn-proxy start says it
// listens once, and that nothing answers on --fallback once (the log and
// the printed steps each said both).
func TestALPNProxyLogsOnce(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	fallback := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t))) // nothing listens
	p := startALPNProxy(t, pidfile, "--listen", listen, "--fallback", fallback, "--log-level", "info")
	if !within(10*time.Second, func() bool { return strings.Contains(p.logs.String(), "nothing answers") }) {
		t.Fatalf("no warning about --fallback %s within 10 s:\n%s", fallback, p.logs)
	}
	for _, s := range []string{"listening", "nothing answers"} {
		if n := strings.Count(p.logs.String(), s); n != 1 {
			t.Errorf("the output has %q %d times, want once:\n%s", s, n, p.logs)
		}
	}
}

// TestALPNProxyDrainExpires: a connection still open at the end of --drain
// (a browser's keep-alive connection) is closed, and start exits with
// 128+SIGTERM and says so, as docs/cli.md tells; stop still succeeds.
func TestALPNProxyDrainExpires(t *testing.T) {
	web, _ := newWebServer(t)
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	proxy := startALPNProxy(t, pidfile, "--listen", listen, "--drain", "1s", "--fallback", web.Listener.Addr().String())
	c, err := tls.Dial("tcp", listen, &tls.Config{InsecureSkipVerify: true, ServerName: "a.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := ck(t, 30*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 {
		t.Errorf("alpn-proxy stop: exit %d, %s", r.code, r.stderr)
	}
	select {
	case <-proxy.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("alpn-proxy start still running after stop")
	}
	var ee *exec.ExitError
	if !errors.As(proxy.err, &ee) || ee.ExitCode() != 128+int(syscall.SIGTERM) {
		t.Errorf("alpn-proxy start exited with %v, want exit status %d", proxy.err, 128+int(syscall.SIGTERM))
	}
	if want := "interrupted: draining: connections still open after 1s were closed"; !strings.Contains(proxy.logs.String(), want) {
		t.Errorf("alpn-proxy start said:\n%s\nwant %q", proxy.logs, want)
	}
}

// TestALPNProxyListenInUse: start on a port something listens on says so
// and names --listen, as the other commands' listeners do.
func TestALPNProxyListenInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	r := ck(t, 30*time.Second, "alpn-proxy", "start", "--pidfile", pidfile, "--listen", busy.Addr().String())
	want := "port " + port + " is already in use, so the alpn-proxy cannot be served there: stop what listens on it, or choose another address with --listen"
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("alpn-proxy start on a busy port: exit %d, %s\nwant exit 1 and %q", r.code, r.stderr, want)
	}
}

// TestALPNProxyStatusWait: a pre-hook that starts the proxy in the
// background and then runs "status --wait" returns once the proxy listens,
// not before: the CA's validation may come right after the hook.
func TestALPNProxyStatusWait(t *testing.T) {
	web, _ := newWebServer(t)
	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	hook := fmt.Sprintf("%s alpn-proxy start --pidfile %s --listen %s --fallback %s >/dev/null 2>&1 & %s alpn-proxy status --pidfile %s --wait 20s",
		binary, pidfile, listen, web.Listener.Addr(), binary, pidfile)
	out, err := exec.Command("sh", "-c", hook).CombinedOutput()
	t.Cleanup(func() { _ = exec.Command(binary, "alpn-proxy", "stop", "--pidfile", pidfile, "--timeout", "40s").Run() })
	if err != nil || !strings.Contains(string(out), "alpn-proxy is running") {
		t.Fatalf("start & status --wait: %v\n%s", err, out)
	}
	c, err := net.DialTimeout("tcp", listen, time.Second) // no retry: it must listen now
	if err != nil {
		t.Fatalf("status --wait returned, but the proxy does not listen: %v", err)
	}
	c.Close()
	if r := ck(t, 30*time.Second, "alpn-proxy", "status", "--pidfile", pidfile+".none", "--wait", "300ms"); r.code != 1 || !strings.Contains(r.stderr, "after waiting 300ms") {
		t.Errorf("status --wait for a proxy that never starts: exit %d, %s", r.code, r.stderr)
	}
}

// TestTLSALPNPortTakenAdvice: cert issue --challenge tls-alpn-01 on a port
// a web server holds points at alpn-proxy, which keeps the web server
// there: an alpn-proxy trial was told only to stop what listens on it.
func TestTLSALPNPortTakenAdvice(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort())))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	r := ck(t, time.Minute, append(pebbleArgs(ca, t.TempDir(), t.TempDir()), "--challenge", "tls-alpn-01", "-d", "taken.test")...)
	if r.code == 0 || !strings.Contains(r.stderr, "is already in use, so tls-alpn-01 cannot be answered there: keep the web server there and put certkeeper alpn-proxy start in front of it") {
		t.Errorf("cert issue with --tls-alpn-addr taken: exit %d, want advice naming alpn-proxy\n%s", r.code, r.stderr)
	}
}
