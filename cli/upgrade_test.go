//go:build unix

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// load sends GET requests for a name at a steady rate, each on a new
// connection, and counts the outcomes.
type load struct {
	ok, failed, refused atomic.Int64
	mu                  sync.Mutex
	errs                []string
	wg                  sync.WaitGroup
	stop                chan struct{}
}

// newClient returns a client for the proxy on port that trusts roots, one
// new connection per request.
func newClient(port int, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(port))
		},
	}}
}

func startLoad(c *http.Client, url string, perSecond int) *load {
	l := &load{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				err := get200(c, url)
				switch {
				case err == nil:
					l.ok.Add(1)
					return
				case errors.Is(err, syscall.ECONNREFUSED):
					l.refused.Add(1)
				default:
					l.failed.Add(1)
				}
				l.mu.Lock()
				l.errs = append(l.errs, time.Now().Format("15:04:05.000 ")+err.Error())
				l.mu.Unlock()
			}()
		}
	}()
	return l
}

func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

func get200(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// TestUpgradeUnderLoad: under 50 requests/s through the proxy (each on a
// new connection), SIGUSR2 with a binary that fails to start leaves the old
// process serving; SIGUSR2 with a good binary hands the listeners over and
// the old process drains and exits 0; then SIGHUP with a changed allowlist
// takes effect. Not one request fails and no connection is refused.
func TestUpgradeUnderLoad(t *testing.T) {
	dir, bin := copyBinary(t)
	storageDir := t.TempDir()
	port, metricsPort := testsvc.FreePort(t), testsvc.FreePort(t)
	back := newBackend(t, "hello")
	cfgFile := filepath.Join(dir, "proxy.yaml")
	writeCfg := func(allow ...string) {
		t.Helper()
		cfg := fmt.Sprintf("tls_addr: 127.0.0.1:%d\nbackend: %s\nca: [local]\nstorage: %s\nallow: [%s]\nmetrics_addr: 127.0.0.1:%d\n",
			port, back.url, storageDir, strings.Join(allow, ", "), metricsPort)
		if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("a.test")
	cmd, logs := startProxyAt(t, bin, "--config", cfgFile, "--log-level", "info")

	r := ck(t, 30*time.Second, "ca", "root", "--storage", storageDir)
	roots := x509.NewCertPool()
	if r.code != 0 || !roots.AppendCertsFromPEM([]byte(r.stdout)) {
		t.Fatalf("ca root: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	client := newClient(port, roots)
	if err := get200(client, "https://a.test/"); err != nil {
		t.Fatalf("first request: %v", err)
	}

	l := startLoad(client, "https://a.test/", 50)
	defer func() {
		if l != nil {
			l.finish()
		}
	}()
	time.Sleep(time.Second)

	// A new binary that cannot start: the old process keeps serving.
	if err := os.Rename(bin, bin+".good"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'broken build' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !within(15*time.Second, func() bool { return strings.Contains(logs(), "upgrade failed; still serving") }) {
		t.Fatalf("no failed upgrade reported within 15 s:\n%s", logs())
	}
	// As docs/troubleshooting.md quotes it, whether the pipe or the exit is seen first.
	if !strings.Contains(logs(), "the new process ended before it was ready (exit status 3)") {
		t.Errorf("the failed upgrade does not say how the new process ended:\n%s", logs())
	}
	time.Sleep(500 * time.Millisecond)

	// The good binary: the listeners move, the old process drains and exits.
	if err := os.Rename(bin+".good", bin); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	next := awaitHandOver(t, cmd, logs, "process", 45*time.Second)
	t.Logf("upgrade: SIGUSR2 at %s; old process gone %v later", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond))
	time.Sleep(time.Second) // the new process alone

	// SIGHUP: b.test becomes allowed with no request failing meanwhile.
	if err := get200(client, "https://b.test/"); err == nil {
		t.Fatal("b.test was served before it was allowed")
	}
	writeCfg("a.test", "b.test")
	if err := next.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !within(10*time.Second, func() bool { return get200(client, "https://b.test/") == nil }) {
		t.Errorf("b.test not served within 10 s of SIGHUP:\n%s", logs())
	}
	time.Sleep(500 * time.Millisecond)
	l.finish()
	total := l.ok.Load() + l.failed.Load() + l.refused.Load()
	t.Logf("requests: %d ok, %d failed, %d refused", l.ok.Load(), l.failed.Load(), l.refused.Load())
	if l.failed.Load() != 0 || l.refused.Load() != 0 {
		t.Errorf("%d requests failed and %d were refused during the upgrade and reload, want 0; first errors: %q",
			l.failed.Load(), l.refused.Load(), l.errs[:min(len(l.errs), 5)])
	}
	if total < 100 {
		t.Errorf("only %d requests were sent; the load did not run", total)
	}
	if strings.Contains(logs(), `level=ERROR msg="serving the`) {
		t.Errorf("the upgrade logged an error for the metrics listener it handed over:\n%s", logs())
	}
	l = nil
}

// TestSocketActivation: given a listening socket as systemd passes it
// (fd 3, LISTEN_FDS=1, LISTEN_PID), the proxy serves on it rather than
// binding the address itself.
func TestSocketActivation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.(*net.TCPListener).File()
	ln.Close() // the socket stays open in sock
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	storageDir := t.TempDir()
	back := newBackend(t, "activated")
	logFile := filepath.Join(t.TempDir(), "proxy.log")
	logs, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	// systemd sets LISTEN_PID to the service's own PID: sh's $$, kept by exec.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, binary, "proxy",
		"--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--ca", "local", "--allow", "a.test",
		"--backend", back.url, "--storage", storageDir)
	cmd.ExtraFiles = []*os.File{sock}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			t.Logf("proxy output:\n%s", data)
		}
	})
	if !within(30*time.Second, func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), "proxy listening")
	}) {
		t.Fatal("the proxy did not start within 30 s")
	}
	r := ck(t, 30*time.Second, "ca", "root", "--storage", storageDir)
	roots := x509.NewCertPool()
	if r.code != 0 || !roots.AppendCertsFromPEM([]byte(r.stdout)) {
		t.Fatalf("ca root: exit %d\n%s", r.code, r.stderr)
	}
	if err := get200(newClient(port, roots), "https://a.test/"); err != nil {
		t.Fatalf("request on the activated socket: %v", err)
	}
}

// copyBinary copies the built certkeeper into a directory of the test's
// own, where an upgrade test can replace it, and returns both.
func copyBinary(t *testing.T) (dir, bin string) {
	t.Helper()
	dir = t.TempDir()
	bin = filepath.Join(dir, "certkeeper")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, bin
}

// awaitHandOver waits (at most limit) for cmd, sent SIGUSR2, to exit 0
// after handing its listeners over, and returns the successor it named
// in its output (killed when the test ends). what names cmd in failures.
func awaitHandOver(t *testing.T, cmd *exec.Cmd, logs func() string, what string, limit time.Duration) *os.Process {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the old %s exited with %v, want 0", what, err)
		}
	case <-time.After(limit):
		t.Fatalf("the old %s did not exit within %v of SIGUSR2:\n%s", what, limit, logs())
	}
	m := regexp.MustCompile(`upgraded: process (\d+) serves now`).FindStringSubmatch(logs())
	if m == nil {
		t.Fatalf("the old %s did not name its successor:\n%s", what, logs())
	}
	pid, _ := strconv.Atoi(m[1])
	next, err := os.FindProcess(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = next.Kill() })
	return next
}

// TestUpgradeKeepsListenAddr: a listen address changed in the config file
// before an upgrade (SIGUSR2) is not applied, since the new process
// inherits the sockets: it says so rather than silently serving on the old
// address.
func TestUpgradeKeepsListenAddr(t *testing.T) {
	dir, bin := copyBinary(t)
	cfgFile := filepath.Join(dir, "proxy.yaml")
	writeCfg := func(port int) {
		writeFileAtomic(t, cfgFile, fmt.Sprintf("tls_addr: 127.0.0.1:%d\nca: local\nallow: a.test\nstorage: %s\n", port, filepath.Join(dir, "state")))
	}
	old, configured := testsvc.FreePort(t), testsvc.FreePort(t)
	writeCfg(old)
	cmd, logs := startProxyAt(t, bin, "--config", cfgFile)
	writeCfg(configured)
	if err := cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	awaitHandOver(t, cmd, logs, "process", 45*time.Second)
	want := "listening on the inherited socket, not on the address configured: restart certkeeper to listen there"
	if out := logs(); !strings.Contains(out, want) || !strings.Contains(out, "127.0.0.1:"+strconv.Itoa(old)) {
		t.Errorf("the upgraded proxy does not say it kept the old address:\n%s", out)
	}
	// Its start-up summary shows where it listens, not the address
	// configured (a trial's showed the new metrics address).
	inherited := false
	for _, line := range strings.Split(logs(), "\n") {
		if strings.Contains(line, "listen:") && strings.Contains(line, ":"+strconv.Itoa(configured)+" ") {
			t.Errorf("the upgraded proxy's summary shows the address configured, not the inherited one: %s", line)
		}
		inherited = inherited || strings.Contains(line, "listen:") && strings.Contains(line, "on 127.0.0.1:"+strconv.Itoa(old)+" (the socket handed over by an upgrade or systemd")
	}
	if !inherited {
		t.Errorf("the upgraded proxy's summary does not say its listener is the socket inherited:\n%s", logs())
	}
}
