//go:build linux

package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
	"github.com/certkeeper/certkeeper/alpnproxy/iptables"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// netnsEnv marks the run of the test binary inside the network namespace
// TestALPNProxyIPTables makes; it holds the namespace it was started from.
const netnsEnv = "CERTKEEPER_TEST_IN_NETNS"

// TestALPNProxyIPTables is issue 7's iptables acceptance test. The host's
// rules are never touched: the test runs itself again under unshare -n, in
// a new network namespace with only a loopback interface, and every
// iptables command, the proxy and its web server live there and vanish
// with it.
func TestALPNProxyIPTables(t *testing.T) {
	if os.Getenv(netnsEnv) != "" {
		testIPTablesInNetns(t)
		return
	}
	if os.Geteuid() != 0 {
		testsvc.Unavailable(t, "root", "run as root: the test makes a network namespace and sets iptables rules in it", fmt.Errorf("euid %d", os.Geteuid()))
	}
	unshare := testsvc.LookPath(t, "unshare", "install Debian's util-linux")
	testsvc.LookPath(t, "ip", "install Debian's iproute2")
	testsvc.LookPath(t, "iptables", "install Debian's iptables")
	testsvc.LookPath(t, "ip6tables", "install Debian's iptables")
	if out, err := exec.Command(unshare, "-n", "true").CombinedOutput(); err != nil {
		testsvc.Unavailable(t, "unshare -n", "run as root where network namespaces can be made", fmt.Errorf("%w: %s", err, out))
	}

	netns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-n", "--", os.Args[0],
		"-test.run=^TestALPNProxyIPTables$", "-test.count=1", "-test.v", "-test.timeout=150s")
	cmd.Env = append(os.Environ(), netnsEnv+"="+netns)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestALPNProxyIPTables") {
		t.Fatalf("the test in a network namespace: %v\n%s", err, out)
	}
	t.Logf("in a network namespace, %s:\n%s", time.Since(start).Round(time.Millisecond), out)
}

// testIPTablesInNetns is the test proper, run inside the namespace.
func testIPTablesInNetns(t *testing.T) {
	// A last guard for the host's rules.
	parent := os.Getenv(netnsEnv)
	if self, err := os.Readlink("/proc/self/ns/net"); err != nil || self == parent {
		t.Fatalf("not in a network namespace of its own (%s, started from %s, %v): refusing to set iptables rules", self, parent, err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v\n%s", err, out)
	}

	// The web server on :443, free in the new namespace.
	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "web server")
	}))
	web.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:443")
	if err != nil {
		t.Fatal(err)
	}
	web.Listener = ln
	web.StartTLS()
	t.Cleanup(web.Close)

	// Installing twice adds one set of rules.
	r := &iptables.Redirect{Spec: iptables.DefaultSpec(21443), Output: true, ExceptUID: 0, IPv6: true}
	for range 2 {
		if err := r.Install(t.Context()); err != nil {
			t.Fatalf("Install: %v", err)
		}
	}
	wantRules(t, "after Install twice", 2, 2)
	if err := r.Remove(t.Context()); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	wantRules(t, "after Remove", 0, 0)

	pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
	args := []string{"--listen", "127.0.0.1:21443", "--alpn", "127.0.0.1:31443", "--fallback", "127.0.0.1:443", "--iptables", "--iptables-output"}
	// start is startALPNProxy, which returns once pidfile exists, waiting
	// further until it holds the new process's ID: a killed proxy leaves
	// its pidfile behind.
	start := func(args ...string) *alpnProxy {
		t.Helper()
		p := startALPNProxy(t, pidfile, args...)
		for deadline := time.Now().Add(30 * time.Second); ; {
			if pid, err := alpnproxy.Pidfile(pidfile).Read(); err == nil && pid == p.cmd.Process.Pid {
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
	stop := func(p *alpnProxy) {
		t.Helper()
		if r := ck(t, 40*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 {
			t.Fatalf("stop: exit %d, %s", r.code, r.stderr)
		}
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			t.Fatal("alpn-proxy start still running after stop returned")
		}
		if p.err != nil {
			t.Errorf("alpn-proxy start exited with %v\n%s", p.err, p.logs)
		}
	}

	// Start: PREROUTING and OUTPUT, for IPv4 and IPv6, for connections to
	// this host's own addresses only (a routing host's containers reach
	// other hosts' :443 past it: an alpn-proxy trial).
	p := start(args...)
	if rules := wantRules(t, "after start", 2, 2); strings.Count(rules, "--dst-type LOCAL") != 4 {
		t.Errorf("the default rules do not all match local destinations only (-m addrtype --dst-type LOCAL):\n%s", rules)
	}
	// A client on this host that is not the proxy's user (root) is
	// redirected; the proxy's own connection to :443 is not, or it would
	// loop back to the proxy and never reach the web server.
	const requests = 3
	for range requests {
		if got, err := getAs(65534, web.Certificate(), "127.0.0.1:443"); err != nil || got != "web server" {
			t.Fatalf("GET https://127.0.0.1:443/ as uid 65534 = %q, %v; want the web server's answer", got, err)
		}
	}
	stop(p)
	wantRules(t, "after stop", 0, 0)
	if want := fmt.Sprintf("stopped: %d connections, 0 to --alpn, %d to --fallback", requests, requests); !strings.Contains(p.logs.String(), want) {
		t.Errorf("proxy output lacks %q (each request once through the proxy, no loop):\n%s", want, p.logs)
	}

	// A proxy killed with SIGKILL leaves its rules; the next start removes
	// them before adding its own, so there is one set.
	p = start(args...)
	p.cmd.Process.Kill()
	<-p.exited
	wantRules(t, "after SIGKILL", 2, 2)
	// Until then, status says the rules remain (port 443 goes nowhere),
	// and stop removes them (an alpn-proxy trial's both said "not
	// running" and left them).
	if r := ck(t, 30*time.Second, "alpn-proxy", "status", "--pidfile", pidfile); r.code != 1 || !strings.Contains(r.stderr, "the iptables rules of a killed alpn-proxy remain") {
		t.Errorf("status after SIGKILL: exit %d, want 1 saying its rules remain\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "alpn-proxy", "stop", "--pidfile", pidfile); r.code != 0 || !strings.Contains(r.stdout, "removed the iptables rules a killed alpn-proxy left") {
		t.Errorf("stop after SIGKILL: exit %d, want 0 saying it removed the rules\n%s%s", r.code, r.stdout, r.stderr)
	}
	wantRules(t, "after a stop following SIGKILL", 0, 0)
	// SIGHUP (the session that started it closing) neither stops it nor
	// leaves its rules without it.
	p = start(args...)
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if r := ck(t, 30*time.Second, "alpn-proxy", "status", "--pidfile", pidfile); r.code != 0 {
		t.Errorf("status after SIGHUP: exit %d, want 0 (still running)\n%s", r.code, r.stderr)
	}
	// A second proxy (another pidfile) does not take the running one's
	// rules away (an alpn-proxy trial's did, and the first served nothing
	// while its status said running).
	other := filepath.Join(t.TempDir(), "other.pid")
	if r := ck(t, 30*time.Second, "alpn-proxy", "start", "--pidfile", other, "--listen", "127.0.0.1:21445", "--iptables"); r.code == 0 ||
		!strings.Contains(r.stderr, "another alpn-proxy runs, with iptables rules redirecting to port 21443") {
		t.Errorf("a second alpn-proxy start --iptables: exit %d, want it refused\n%s", r.code, r.stderr)
	}
	wantRules(t, "after a second start was refused", 2, 2)
	stop(p)
	wantRules(t, "after a stop following SIGHUP", 0, 0)
	// A rule spec of its own that redirects to another port than the
	// proxy listens on is refused, and adds nothing (an alpn-proxy trial's
	// acme-alpn-proxy spec sent :443 nowhere).
	r2 := ck(t, 30*time.Second, "alpn-proxy", "start", "--pidfile", pidfile, "--listen", ":21444", "--iptables",
		"--rulespec", "-p tcp --dport 443 -j REDIRECT --to-ports 21443")
	if r2.code == 0 || !strings.Contains(r2.stderr, "redirects to port 21443, but the proxy listens on port 21444") {
		t.Errorf("start with a rule spec to another port: exit %d, want a refusal naming both ports\n%s", r2.code, r2.stderr)
	}
	wantRules(t, "after a refused rule spec", 0, 0)
	// --iptables without --listen listens on every address, where
	// REDIRECT delivers connections from other hosts (the documented cron
	// hook gave no --listen, and the loopback default took sites down).
	p = start("--alpn", "127.0.0.1:31443", "--fallback", "127.0.0.1:443", "--iptables")
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.logs.String(), "listening on [::]:21443") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.logs.String(), "listening on [::]:21443") {
		t.Errorf("alpn-proxy start --iptables without --listen does not listen on every address:\n%s", p.logs)
	}
	stop(p)
	p = start(args...)
	p.cmd.Process.Kill()
	<-p.exited
	p = start(args...)
	wantRules(t, "after a start following SIGKILL", 2, 2)
	stop(p)
	wantRules(t, "after the second stop", 0, 0)

	// The original's environment variables: a rule spec without the tag
	// (which is appended) and no ip6tables rules. Leftover IPv6 rules are
	// still removed.
	p = start(args...)
	p.cmd.Process.Kill()
	<-p.exited
	t.Setenv(rulespecEnv, "-p tcp --dport 8443 -j REDIRECT --to-ports 21443")
	t.Setenv(disableV6Env, "y")
	p = start("--listen", "127.0.0.1:21443", "--iptables")
	rules := wantRules(t, "with "+rulespecEnv+" and "+disableV6Env, 1, 0)
	if !strings.Contains(rules, "--dport 8443") {
		t.Errorf("rules do not follow %s:\n%s", rulespecEnv, rules)
	}
	stop(p)
	wantRules(t, "after the last stop", 0, 0)
}

// wantRules checks the number of tagged rules iptables and ip6tables list
// in the nat table, and returns the listings.
func wantRules(t *testing.T, when string, v4, v6 int) string {
	t.Helper()
	var all strings.Builder
	for _, c := range []struct {
		tool string
		want int
	}{{"iptables", v4}, {"ip6tables", v6}} {
		out, err := exec.Command(c.tool, "-w", "5", "-t", "nat", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("%s -t nat -S: %v\n%s", c.tool, err, out)
		}
		if got := strings.Count(string(out), "--comment "+iptables.Tag); got != c.want {
			t.Errorf("%s: %s -t nat -S lists %d rules tagged %s, want %d:\n%s", when, c.tool, got, iptables.Tag, c.want, out)
		}
		all.Write(out)
	}
	return all.String()
}

// getAs makes one HTTPS request to addr from a socket owned by uid, as a
// client running as another user than the proxy would, and returns the
// body.
func getAs(uid int, cert *x509.Certificate, addr string) (string, error) {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialAs(ctx, uid, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// dialAs dials from a socket owned by uid. iptables' owner match looks at
// the file system user ID the socket was made with, which setfsuid changes
// for the calling thread only: the dial runs on a locked thread of its own,
// which the runtime discards when the goroutine ends still locked.
func dialAs(ctx context.Context, uid int, network, addr string) (net.Conn, error) {
	type dialed struct {
		conn net.Conn
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with its fsuid
		syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(uid), 0, 0)
		// setfsuid returns the previous value and no error: an invalid ID
		// reads the current one back.
		if got, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, ^uintptr(0), 0, 0); int(got) != uid {
			ch <- dialed{err: fmt.Errorf("setfsuid(%d): fsuid is %d", uid, got)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		ch <- dialed{c, err}
	}()
	r := <-ch
	return r.conn, r.err
}
