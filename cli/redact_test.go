package cli

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/policy"
)

// showsSecret reports whether out shows any part of the test password
// "Sup3r?Secr3t" (in any case: issuer IDs are lower-cased; "%Se" is what
// a percent-decoding error quotes) or the test token.
func showsSecret(out string) bool {
	out = strings.ToLower(out)
	return strings.Contains(out, "sup3r") || strings.Contains(out, "secr3t") || strings.Contains(out, "%se") || strings.Contains(out, "t0ken")
}

// TestURLPasswordsNotPrinted: a password in a URL given to the binary —
// --storage, --backend, --route, --ask — holding any of / ? # @ : % as
// typed (not percent-encoded) shows in nothing the binary prints, whether
// the URL is refused at start or fails when used.
func TestURLPasswordsNotPrinted(t *testing.T) {
	dead := strconv.Itoa(testsvc.FreePort(t)) // nothing listens there
	for _, c := range strings.Split("/?#@:%", "") {
		pw := "user:Sup3r" + c + "Secr3t@"
		storageURL := "redis://" + pw + "127.0.0.1:" + dead + "/0"
		for _, args := range [][]string{
			{"status", "--storage", storageURL},
			{"storage", "migrate", "--from", storageURL, "--to", t.TempDir()},
			{"proxy", "--tls-addr", "127.0.0.1:0", "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(),
				"--backend", "http://" + pw + "127.0.0.1:" + dead},
			{"proxy", "--tls-addr", "127.0.0.1:0", "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(),
				"--backend", "http://127.0.0.1:" + dead, "--route", "b.test=http://" + pw + "127.0.0.1:" + dead},
		} {
			r := ck(t, 30*time.Second, args...)
			if r.code == 0 {
				t.Errorf("certkeeper %s: exit 0, want a failure", strings.Join(args[:2], " "))
			}
			if showsSecret(r.stdout + r.stderr) {
				t.Errorf("password with %q: certkeeper %s %s printed it:\n%s%s", c, args[0], args[1], r.stdout, r.stderr)
			}
		}

		port := testsvc.FreePort(t)
		ask := "http://" + pw + "127.0.0.1:" + dead + "/allowed?token=T0ken"
		args := []string{"proxy", "--tls-addr", "127.0.0.1:" + strconv.Itoa(port), "--ca", "local", "--ask", ask,
			"--storage", t.TempDir(), "--backend", "http://127.0.0.1:" + dead, "--log-level", "debug"}
		if (&policy.AskURL{URL: ask}).Check() != nil {
			// An ask URL that does not parse is refused at start.
			if r := ck(t, 30*time.Second, args...); r.code == 0 || showsSecret(r.stderr) || !strings.Contains(r.stderr, "--ask") {
				t.Errorf("password with %q: exit %d, want a refusal naming --ask and not the password:\n%s", c, r.code, r.stderr)
			}
			continue
		}
		p := startProxyLogged(t, args[1:]...)
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{ServerName: "a.test", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Errorf("handshake with an ask URL that cannot answer succeeded")
		}
		// The refusal is logged once the handshake has failed.
		within(10*time.Second, func() bool { return strings.Contains(p.output(), "handshake error") })
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if out := p.output(); showsSecret(out) || !strings.Contains(out, "a.test") {
			t.Errorf("password with %q: the proxy's output shows it, or does not name a.test:\n%s", c, out)
		}
	}
}
