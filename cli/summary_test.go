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
)

// loopbackAddrs returns n addresses free on 127.0.0.1 just now.
func loopbackAddrs(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	}
	return out
}

// TestStartupSummary: at the default log level, proxy and server say at
// start which names they allow, the CA chain, the storage and every
// address they listen on.
func TestStartupSummary(t *testing.T) {
	t.Parallel()
	t.Run("proxy", func(t *testing.T) {
		t.Parallel()
		a := loopbackAddrs(t, 4)
		dir := t.TempDir()
		p := startProxyLogged(t, "--allow", "a.example", "--allow", "*.a.example", "--ask", "http://user:secret@127.0.0.1:9/ask?key=hidden",
			"--ca", "local", "--storage", dir, "--tls-addr", a[0], "--http-addr", a[1], "--metrics-addr", a[2], "--status-addr", a[3])
		out := p.output()
		for _, want := range []string{
			"proxy starting in production mode with the local CA (an intranet: clients trust its root)",
			"a.example, *.a.example (--allow)",
			"ask URL http://REDACTED@127.0.0.1:9/ask approves",
			"CA chain:   local",
			"storage:    " + dir,
			"HTTPS (and tls-alpn-01) on " + a[0],
			"http-01 and redirects to HTTPS on " + a[1],
			"metrics (/metrics, /healthz) on " + a[2],
			"status page (/, /status.json, /healthz) on " + a[3],
			"log level:  info",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "secret") || strings.Contains(out, "hidden") {
			t.Errorf("the summary shows the ask URL's secrets:\n%s", out)
		}
	})
	// With --challenge dns-01 alone, no listener claims a challenge it
	// does not answer (trial 19: "HTTPS (and tls-alpn-01)").
	t.Run("proxy dns-01", func(t *testing.T) {
		t.Parallel()
		a := loopbackAddrs(t, 2)
		p := startProxyLogged(t, "--allow", "a.example", "--ca", "local", "--storage", t.TempDir(), "--tls-addr", a[0], "--http-addr", a[1],
			"--challenge", "dns-01", "--dns", "exec", "--dns-exec", "/bin/true")
		out := p.output()
		for _, want := range []string{"listen:     HTTPS on " + a[0], "listen:     redirects to HTTPS on " + a[1]} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "(and tls-alpn-01)") || strings.Contains(out, "http-01 and redirects") {
			t.Errorf("the summary names a challenge --challenge dns-01 does not use:\n%s", out)
		}
	})
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		a := loopbackAddrs(t, 4)
		dir := t.TempDir()
		p := startLogged(t, binary, "server listening", "server", "--token-file", writeTokens(t), "--ca", "local", "--storage", dir,
			"--listen", a[0], "--http-addr", a[1], "--tls-alpn-addr", a[2], "--metrics-addr", a[3], "--status-addr", a[3])
		out := p.output()
		for _, want := range []string{
			"server starting in production mode with the local CA (an intranet: clients trust its root)",
			"none on demand: no --allow or --ask",
			"storage:    " + dir,
			"trust:      clients need the local CA's root: certkeeper ca root --storage " + dir + " > root.pem",
			"API (HTTP) and http-01 on " + a[0] + " (--listen)",
			"API (HTTP) and http-01 on " + a[1] + " (--http-addr)",
			"tls-alpn-01 (validation only) on " + a[2],
			"metrics (/metrics, /healthz) and status page (/, /status.json) on " + a[3],
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary does not say %q:\n%s", want, out)
			}
		}
	})
	t.Run("server https, tls-alpn-01 alone", func(t *testing.T) {
		t.Parallel()
		a := loopbackAddrs(t, 3)
		dir := t.TempDir()
		certFile, keyFile, _, _ := writeTestCert(t, dir, "api.test", nil, nil)
		p := startLogged(t, binary, "server listening", "server", "--token-file", writeTokens(t), "--ca", "local", "--storage", dir,
			"--listen", a[0], "--http-addr", a[1], "--tls-alpn-addr", a[2], "--api-cert", certFile+":"+keyFile, "--challenge", "tls-alpn-01")
		out := p.output()
		for _, want := range []string{"API (HTTPS) on " + a[0] + " (--listen)", "/healthz (the API is HTTPS on --listen) on " + a[1] + " (--http-addr)"} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary does not say %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "http-01 ") {
			t.Errorf("the summary names http-01, which --challenge tls-alpn-01 does not try:\n%s", out)
		}
	})
}

// TestStartupSummarySources: the summary credits each setting to the flag
// that gave it, the config file's key, or the default.
func TestStartupSummarySources(t *testing.T) {
	t.Parallel()
	a := loopbackAddrs(t, 3)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "certkeeper.yaml")
	body := fmt.Sprintf("allow: [a.example]\nca: [local]\nstorage: %q\ntls_addr: %q\n", dir, a[0])
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProxyLogged(t, "--config", cfg, "--http-addr", a[1])
	out := p.output()
	for _, want := range []string{
		"any name matching a.example (allow in " + cfg + ")\n",
		"on " + a[0] + " (tls_addr in " + cfg + ")\n",
		"on " + a[1] + " (--http-addr)\n",
		"log level:  info (default)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the summary does not say %q:\n%s", want, out)
		}
	}
	// The server's own file, without the proxy's tls_addr (its deprecated
	// name of tls_alpn_addr).
	cfg = filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("allow: [a.example]\nca: [local]\nstorage: %q\n", t.TempDir())), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startLogged(t, binary, "server listening", "server", "--config", cfg, "--listen", a[2], "--log-level", "warn",
		"--token-file", writeTokens(t))
	out = p.output()
	for _, want := range []string{"(allow in " + cfg + ")\n", "on " + a[2] + " (--listen)\n", "log level:  warn (--log-level)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the server's summary does not say %q:\n%s", want, out)
		}
	}
}

// TestRefusedNameLogged: at the default level, a name the policy refuses
// is logged with the reason, once per name however often it is asked.
func TestRefusedNameLogged(t *testing.T) {
	t.Parallel()
	addr := loopbackAddrs(t, 1)[0]
	p := startProxyLogged(t, "--allow", "a.example", "--ca", "local", "--storage", t.TempDir(), "--tls-addr", addr)
	handshake := func(name string) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
			&tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			t.Fatalf("a handshake for %s succeeded; the policy allows only a.example", name)
		}
	}
	for range 5 {
		handshake("refused.example")
	}
	handshake("other.example")
	msg := "name refused: no certificate"
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.output(), msg) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := p.output()
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, msg) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "name=refused.example") || !strings.Contains(lines[1], "name=other.example") {
		t.Fatalf("want one line for refused.example, then one for other.example; got %d:\n%s", len(lines), out)
	}
	if !strings.Contains(lines[0], "not on the allowlist") {
		t.Errorf("the refusal does not say why: %s", lines[0])
	}
}
