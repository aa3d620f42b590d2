package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestServerTLSAddrOnlyALPN: --tls-alpn-addr answers tls-alpn-01 and nothing
// else. A server with --no-auth (anonymous on its loopback --listen)
// obtains a.test from Pebble through tls-alpn-01 on --tls-alpn-addr; there an
// ordinary ClientHello (curl, a Go client with or without ALPN) gets a
// handshake failure, never the API and its private keys.
func TestServerTLSAddrOnlyALPN(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort()))
	startServer(t, "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", t.TempDir(), "--profile", "default",
		"--listen", listen, "--no-auth", "--tls-alpn-addr", tlsAddr, "--challenge", "tls-alpn-01", "--allow", "a.test")

	// Issuance through tls-alpn-01 on --tls-alpn-addr still works: the first
	// request waits for it.
	if code, _, body := apiGet(t, "http://"+listen, "/v1/certificates/a.test", "", nil); code != http.StatusOK || !strings.Contains(string(body), "PRIVATE KEY") {
		t.Fatalf("GET /v1/certificates/a.test on --listen = %d %.200s, want 200 with the key (issued through tls-alpn-01)", code, body)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}

	// An ordinary client on --tls-alpn-addr: no handshake, no key.
	for _, protos := range [][]string{nil, {"h2", "http/1.1"}, {"http/1.1"}} {
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second},
			Config: &tls.Config{ServerName: "a.test", InsecureSkipVerify: true, NextProtos: protos}}
		conn, err := d.DialContext(t.Context(), "tcp", tlsAddr)
		if err == nil {
			conn.Close()
			t.Errorf("TLS handshake on --tls-alpn-addr offering ALPN %q succeeded (negotiated %q); want a handshake failure",
				protos, conn.(*tls.Conn).ConnectionState().NegotiatedProtocol)
		}
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		testsvc.Unavailable(t, "curl", "install it: apt-get install curl", err)
	}
	port := strconv.Itoa(ca.TLSPort())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "-k", "--max-time", "20", "--resolve", "a.test:"+port+":127.0.0.1",
		"https://a.test:"+port+"/v1/certificates/a.test").CombinedOutput()
	if err == nil || strings.Contains(string(out), "PRIVATE KEY") {
		t.Errorf("curl -k https://a.test:%s/v1/certificates/a.test (--tls-alpn-addr): %v\n%.300s\nwant a TLS handshake failure", port, err, out)
	} else {
		t.Logf("curl on --tls-alpn-addr: %v: %s", err, strings.TrimSpace(string(out)))
	}
}

// TestServerRefusesOpenListen: a listener beyond loopback that would hand
// out keys without authentication stops the server before it serves, and
// the message names the listener's flag and the flags that fix it.
func TestServerRefusesOpenListen(t *testing.T) {
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"--listen", "0.0.0.0:0"}, "--listen"},
		{[]string{"--listen", "[::]:0"}, "--listen"},
		{[]string{"--listen", ":0"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:0", "--http-addr", "0.0.0.0:0"}, "--http-addr"},
		{[]string{"--listen", "127.0.0.1:0", "--http-addr", "[::]:0"}, "--http-addr"},
	} {
		r := ck(t, 30*time.Second, append([]string{"server", "--ca", "local", "--storage", t.TempDir()}, tt.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.flag+" ") || !strings.Contains(r.stderr, "--token-file") ||
			strings.Contains(r.stderr, "server listening") {
			t.Errorf("server %v: exit %d, stderr %q; want exit 2 before listening, naming %s and --token-file", tt.args, r.code, r.stderr, tt.flag)
		}
	}
}

// TestServerAnonymousWarning: with --no-auth (no credential) on loopback,
// start and --check-config both say that every local process may fetch
// keys (a trial found --check-config silent, and the docs promising a
// token); with a token file neither does.
func TestServerAnonymousWarning(t *testing.T) {
	const warning = "no --token-file or --client-ca: every local process, whichever user runs it, may fetch private keys"
	r := ck(t, 30*time.Second, "server", "--ca", "local", "--storage", t.TempDir(), "--allow", "a.test", "--listen", "127.0.0.1:0", "--no-auth", "--check-config")
	if r.code != 0 || !strings.Contains(r.stderr, warning) {
		t.Errorf("server --no-auth --check-config: exit %d, stderr %q; want 0 and %q", r.code, r.stderr, warning)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("tok-0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = ck(t, 30*time.Second, "server", "--ca", "local", "--storage", t.TempDir(), "--allow", "a.test", "--token-file", tokens, "--check-config")
	if r.code != 0 || strings.Contains(r.stderr, "every local process") {
		t.Errorf("server --check-config with a token file: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestServerRefusesNoCredential: without --token-file or --client-ca the
// server refuses to start even on loopback, before it listens, and
// --check-config reports it (a trial fetched every private key as uid
// 65534 from an anonymous loopback server); the message says what to give.
// --no-auth opts in: the server starts and warns, from a flag or the
// no_auth key. --no-auth beside a credential is a usage error.
func TestServerRefusesNoCredential(t *testing.T) {
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	args := []string{"server", "--ca", "local", "--storage", t.TempDir(), "--allow", "a.test", "--listen", listen}
	const refusal = "no --token-file or --client-ca: every process of this host, whichever user runs it, could fetch private keys from --listen "
	for _, tt := range []struct {
		extra []string
		code  int
	}{{nil, 2}, {[]string{"--check-config"}, 1}} {
		r := ck(t, 30*time.Second, slices.Concat(args, tt.extra)...)
		if r.code != tt.code || !strings.Contains(r.stderr, refusal+listen) || !strings.Contains(r.stderr, "give --token-file FILE") ||
			!strings.Contains(r.stderr, "--no-auth") || strings.Contains(r.stderr, "server listening") {
			t.Errorf("server %v without a credential: exit %d, stderr %q; want exit %d, %q and what to give", tt.extra, r.code, r.stderr, tt.code, refusal)
		}
	}

	const warning = "every local process, whichever user runs it, may fetch private keys"
	for _, extra := range [][]string{{"--no-auth", "--check-config"}, {"--config", writeConfig(t, "no_auth: true\n"), "--check-config"}} {
		if r := ck(t, 30*time.Second, slices.Concat(args, extra)...); r.code != 0 || !strings.Contains(r.stderr, warning) {
			t.Errorf("server %v: exit %d, stderr %q; want 0 and the warning", extra, r.code, r.stderr)
		}
	}
	p := startLogged(t, binary, "server listening", slices.Concat(args, []string{"--no-auth"})...)
	if !strings.Contains(p.output(), warning) {
		t.Errorf("server --no-auth started without warning:\n%s", p.output())
	}

	for _, tt := range []struct {
		extra []string
		code  int
	}{{[]string{"--no-auth", "--token-file", writeTokens(t)}, 2}, {[]string{"--no-auth", "--token-file", writeTokens(t), "--check-config"}, 1}} {
		r := ck(t, 30*time.Second, slices.Concat(args, tt.extra)...)
		if r.code != tt.code || !strings.Contains(r.stderr, "--no-auth with --token-file") || !strings.Contains(r.stderr, "drop --no-auth") {
			t.Errorf("server %v: exit %d, stderr %q; want exit %d, naming --no-auth to drop", tt.extra, r.code, r.stderr, tt.code)
		}
	}
}

// TestServerPlainAPIWarning: with a token file, --listen beyond loopback
// is accepted, but without --api-cert it hands out tokens and keys over
// plain HTTP: the server warns, naming --listen and --api-cert. On
// loopback, or with --api-cert, it does not. Checked with --check-config,
// which runs the same check as a start, so nothing listens beyond
// loopback.
func TestServerPlainAPIWarning(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("tok-0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, _, _ := writeTestCert(t, dir, "api.test", nil, nil)
	const warning = "serves the API over plain HTTP beyond loopback"
	for _, tt := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--listen", "0.0.0.0:0"}, true},
		{[]string{"--listen", "[::]:0"}, true},
		{[]string{"--listen", "0.0.0.0:0", "--api-cert", certFile + ":" + keyFile}, false},
		{[]string{"--listen", "127.0.0.1:0"}, false},
		{[]string{"--listen", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, false},
		{[]string{"--http-addr", "0.0.0.0:0", "--listen", "127.0.0.1:0"}, true},
		{[]string{"--http-addr", "0.0.0.0:0", "--api-cert", certFile + ":" + keyFile}, false}, // http-01 alone there
	} {
		args := append([]string{"server", "--check-config", "--ca", "local", "--storage", t.TempDir(), "--allow", "a.test",
			"--token-file", tokens}, tt.args...)
		r := ck(t, 30*time.Second, args...)
		if r.code != 0 {
			t.Errorf("server %v: exit %d, stderr %q; want 0", tt.args, r.code, r.stderr)
			continue
		}
		if got := strings.Contains(r.stderr, warning); got != tt.warn ||
			tt.warn && !(strings.Contains(r.stderr, tt.args[0]+" "+tt.args[1]) && strings.Contains(r.stderr, "--api-cert")) {
			t.Errorf("server %v: stderr %q; want a warning naming %s and --api-cert: %v", tt.args, r.stderr, tt.args[0], tt.warn)
		}
	}
}

// TestServerHTTPAddrWithAPICert: with --api-cert, --http-addr answers
// http-01 (Pebble validates a.test through it) and /healthz, and refuses
// the API with 403, a valid token or not, so no token or key crosses in
// clear; the key comes over HTTPS on --listen.
func TestServerHTTPAddrWithAPICert(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	apiCert, apiKey := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api.key")
	if r := ck(t, 30*time.Second, "selfsigned", "-d", "127.0.0.1", "--cert-out", apiCert, "--key-out", apiKey); r.code != 0 {
		t.Fatalf("selfsigned: exit %d %s", r.code, r.stderr)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	plain := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort()))
	startServer(t, "--listen", listen, "--api-cert", apiCert+":"+apiKey, "--http-addr", strings.TrimPrefix(plain, "http://"),
		"--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", t.TempDir(), "--allow", "a.test",
		"--token-file", writeTokens(t))
	for _, token := range []string{serverToken, ""} {
		if code, _, body := apiGet(t, plain, "/v1/certificates/a.test", token, nil); code != http.StatusForbidden || !strings.Contains(string(body), "HTTPS") {
			t.Errorf("GET %s/v1/certificates/a.test (token %v) = %d %s; want 403 naming HTTPS", plain, token != "", code, body)
		}
	}
	if code, _, body := apiGet(t, plain, "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("GET %s/healthz = %d %s", plain, code, body)
	}
	pem, err := os.ReadFile(apiCert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+listen+"/v1/certificates/a.test", nil)
	req.Header.Set("Authorization", "Bearer "+serverToken)
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if body, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "PRIVATE KEY") {
		t.Errorf("GET https://%s/v1/certificates/a.test = %s %.200s; want the key (issued through http-01 on --http-addr)", listen, resp.Status, body)
	}
}

// rawExchange sends req on a new connection to addr and returns the
// status line of the answer and when the server closed the connection:
// a client that announces a body and sends none must be answered and let
// go, not held while the server waits for the body. It gives up after
// 5 s, returning what it had.
func rawExchange(t *testing.T, addr, req string) (status string, closedAfter time.Duration, err error) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(5 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	status, err = br.ReadString('\n')
	if err != nil {
		return strings.TrimSpace(status), 0, fmt.Errorf("no answer within 5 s: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return strings.TrimSpace(status), 0, fmt.Errorf("answered, but the connection was held open for 5 s: %w", err)
	}
	return strings.TrimSpace(status), time.Since(start), nil
}

// TestServerSlowBody: a client that sends headers announcing a body
// (Content-Length: 1000) and then nothing is answered at once and
// disconnected, on the API (401 without a token, before any body is
// read; 413 with one: a GET takes no body), on http-01, and on the
// metrics and status listeners; it holds no connection.
func TestServerSlowBody(t *testing.T) {
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	statusAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	startServer(t, "--ca", "local", "--storage", t.TempDir(), "--listen", listen, "--token-file", writeTokens(t), "--allow", "a.test",
		"--metrics-addr", metricsAddr, "--status-addr", statusAddr)
	const body = "Content-Length: 1000\r\n\r\n" // and no body
	for _, tt := range []struct {
		name, addr, req, want string
	}{
		{"API without a token", listen, "GET /v1/certificates/a.test HTTP/1.1\r\nHost: x\r\n" + body, " 401 "},
		{"API with a token", listen, "GET /v1/certificates/a.test HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + serverToken + "\r\n" + body, " 413 "},
		{"API, chunked", listen, "GET /v1/certificates/a.test HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + serverToken + "\r\nTransfer-Encoding: chunked\r\n\r\n", " 413 "},
		{"http-01", listen, "GET /.well-known/acme-challenge/x HTTP/1.1\r\nHost: a.test\r\n" + body, " 413 "},
		{"metrics", metricsAddr, "GET /metrics HTTP/1.1\r\nHost: x\r\n" + body, " 413 "},
		{"status page", statusAddr, "GET /status.json HTTP/1.1\r\nHost: x\r\n" + body, " 413 "},
	} {
		status, took, err := rawExchange(t, tt.addr, tt.req)
		if err != nil || !strings.Contains(status, tt.want) || took > 2*time.Second {
			t.Errorf("%s: %q, connection closed after %s, %v; want%sat once and the connection closed", tt.name, status, took.Round(time.Millisecond), err, tt.want)
		}
	}
	// The server is unharmed.
	if code, _, body := apiGet(t, "http://"+listen, "/v1/certificates/a.test", serverToken, nil); code != http.StatusOK {
		t.Errorf("GET /v1/certificates/a.test afterwards = %d %s, want 200", code, body)
	}
}

// TestServerAuditLogFails: with an audit log that cannot be written
// (/dev/full), the write error is on stderr by the time the server
// listens, and a key fetch gets 503 rather than a key nobody recorded;
// with --audit-fail-open the key is handed out and the error still shows.
func TestServerAuditLogFails(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full here: %v", err)
	}
	for _, tt := range []struct {
		name  string
		extra []string
		want  int
	}{
		{"fail closed", nil, http.StatusServiceUnavailable},
		{"--audit-fail-open", []string{"--audit-fail-open"}, http.StatusOK},
		{"audit_fail_open in --config", []string{"--config", writeConfig(t, "audit_fail_open: true\nmetrics_token: metrics-token-0123456789\n")}, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
			p := startLogged(t, binary, "server listening", append([]string{"server", "--ca", "local", "--storage", t.TempDir(), "--listen", listen,
				"--token-file", writeTokens(t), "--allow", "a.test", "--audit-log", "/dev/full"}, tt.extra...)...)
			if out := p.output(); !strings.Contains(out, "no space left on device") {
				t.Errorf("stderr when the server listens:\n%s\nwant the audit log's write error (no space left on device)", out)
			}
			code, hdr, body := apiGet(t, "http://"+listen, "/v1/certificates/a.test", serverToken, nil)
			if code != tt.want || (code == http.StatusServiceUnavailable && hdr.Get("Retry-After") == "") {
				t.Errorf("key fetch = %d (Retry-After %q) %.200s; want %d", code, hdr.Get("Retry-After"), body, tt.want)
			}
			if code == http.StatusOK && !strings.Contains(string(body), "PRIVATE KEY") {
				t.Errorf("key fetch = 200 without a key: %.200s", body)
			}
		})
	}
}

// writeConfig writes a --config file holding yaml.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestServerTokenScopes: a token line may carry a scope, "names=" and
// patterns: the token fetches those names and gets 403 for any other (and
// for /metrics, which names every host), while an unscoped token fetches
// every name. Audit lines name the token's line and its scope, for
// hand-outs and refusals alike. A scope that does not parse stops the
// server at start, naming its line.
func TestServerTokenScopes(t *testing.T) {
	const shopToken = "shop-pool-token-0123456789"
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# one token per nginx pool\n"+shopToken+"  names=*.shop.test,api.test\n"+serverToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	base := "http://" + listen
	auditLog := filepath.Join(dir, "audit.log")
	startServer(t, "--ca", "local", "--storage", t.TempDir(), "--listen", listen, "--token-file", tokens, "--audit-log", auditLog,
		"--allow", "*.shop.test", "--allow", "shop.test", "--allow", "api.test", "--allow", "other.test")
	for _, tt := range []struct {
		token, path string
		want        int
	}{
		{shopToken, "/v1/certificates/www.shop.test", http.StatusOK},
		{shopToken, "/v1/certificates/a.b.shop.test", http.StatusOK},
		{shopToken, "/v1/certificates/API.test", http.StatusOK},
		{shopToken, "/v1/certificates/other.test", http.StatusForbidden},
		{shopToken, "/v1/certificates/shop.test", http.StatusForbidden},
		{shopToken, "/v1/certificates/xshop.test", http.StatusForbidden},
		{shopToken, "/v1/ocsp/other.test", http.StatusForbidden},
		{shopToken, "/metrics", http.StatusForbidden},
		{serverToken, "/v1/certificates/other.test", http.StatusOK},
		{serverToken, "/v1/certificates/www.shop.test", http.StatusOK},
	} {
		code, _, body := apiGet(t, base, tt.path, tt.token, nil)
		keyHandedOut := strings.Contains(string(body), "PRIVATE KEY")
		if code != tt.want || (code != http.StatusOK && keyHandedOut) {
			t.Errorf("GET %s with the %s token = %d %.100s, want %d", tt.path, map[bool]string{true: "shop", false: "unscoped"}[tt.token == shopToken], code, body, tt.want)
		}
	}
	waitAudit(t, auditLog, `"name":"www.shop.test","who":"token 3"`)
	data, _ := os.ReadFile(auditLog)
	var handOut, refused bool
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.Contains(l, `"msg":"key handed out"`) && strings.Contains(l, `"name":"www.shop.test","who":"token 2"`):
			handOut = strings.Contains(l, `"scope":"*.shop.test,api.test"`)
		case strings.Contains(l, `"name":"other.test"`) && strings.Contains(l, `"who":"token 2"`):
			refused = !strings.Contains(l, `"msg":"key handed out"`) && strings.Contains(l, `"scope":"*.shop.test,api.test"`)
		}
	}
	if !handOut || !refused {
		t.Errorf("audit log (hand-out line with the scope: %v; refusal line with the scope: %v):\n%s", handOut, refused, data)
	}

	for _, line := range []string{shopToken + " names=", shopToken + " names=*.shop.test,", shopToken + " hosts=a.test", shopToken + " names=a..test"} {
		bad := filepath.Join(t.TempDir(), "tokens")
		if err := os.WriteFile(bad, []byte("# comment\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		r := ck(t, 30*time.Second, "server", "--ca", "local", "--storage", t.TempDir(), "--listen", "127.0.0.1:0", "--token-file", bad)
		if r.code == 0 || !strings.Contains(r.stderr, "line 2") {
			t.Errorf("token line %q: exit %d, stderr %q; want a refusal naming line 2", line, r.code, r.stderr)
		}
	}
}

// TestListenPortBusy: a proxy or server whose port is taken says which
// port, which flag moves it, and no --challenge (which cannot help HTTPS
// or the API); the server said only "bind: address already in use", and
// a taken --metrics-addr or --status-addr still does.
func TestListenPortBusy(t *testing.T) {
	addr := takenAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"proxy", "--tls-addr", addr}, "--tls-addr"},
		{[]string{"server", "--ca", "local", "--no-auth", "--listen", addr}, "--listen"},
		{[]string{"proxy", "--tls-addr", "127.0.0.1:0", "--metrics-addr", addr}, "--metrics-addr"},
		{[]string{"proxy", "--tls-addr", "127.0.0.1:0", "--http-addr", addr}, "--http-addr"}, // after the HTTPS listener started: http-01 may take --challenge
		{[]string{"server", "--ca", "local", "--no-auth", "--listen", "127.0.0.1:0", "--status-addr", addr}, "--status-addr"},
	} {
		t.Run(tt.args[0]+tt.flag, func(t *testing.T) {
			r := ck(t, 30*time.Second, append(tt.args, "--storage", t.TempDir())...)
			want := "port " + port + " is already in use"
			if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "another address with "+tt.flag) ||
				strings.Contains(r.stderr, "--challenge") && tt.flag != "--http-addr" {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1, %q and %s, and no --challenge", r.code, r.stderr, want, tt.flag)
			}
			// The failure alone: "draining connections" and a storage
			// warning read as a stop of a process that had served (an ops
			// trial); and no --webroot, which the proxy does not take.
			if strings.Contains(r.stderr, "draining connections") || strings.Contains(r.stderr, "failures status keeps") || strings.Contains(r.stderr, "--webroot") {
				t.Errorf("a start that failed says it drains, or warns of its storage:\n%s", r.stderr)
			}
		})
	}
}

// TestErrorsNameConfigKeys: an error that names a flag whose value came
// from the --config file says which key of which file it was (the
// operator wrote tls_addr, not --tls-addr), at start, in --check-config
// and not for a flag given on the command line.
func TestErrorsNameConfigKeys(t *testing.T) {
	busy := takenAddr(t)
	proxyFile := writeConfig(t, "tls_addr: "+busy+"\nca: local\nallow: localhost\nstorage: "+t.TempDir()+"\n")
	r := ck(t, 30*time.Second, "proxy", "--config", proxyFile)
	if want := "--tls-addr is tls_addr in " + proxyFile; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("proxy: exit %d, stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, want)
	}
	r = ck(t, 30*time.Second, "proxy", "--config", proxyFile, "--tls-addr", busy)
	if r.code != 1 || strings.Contains(r.stderr, "--tls-addr is") {
		t.Errorf("proxy --tls-addr given: exit %d, stderr:\n%s\nwant exit 1 and no config key named", r.code, r.stderr)
	}
	serverFile := writeConfig(t, "listen: 0.0.0.0:0\nca: local\nallow: localhost\n")
	r = ck(t, 30*time.Second, "server", "--check-config", "--config", serverFile, "--storage", t.TempDir())
	if want := "--listen is listen in " + serverFile; r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("server --check-config: exit %d, stderr:\n%s\nwant a failure and %q", r.code, r.stderr, want)
	}
}

// takenAddr is the address of a loopback listener that accepts nothing
// (a port in use, or a server that never answers) until the test ends.
func takenAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestServerConnLimits: --max-conns-per-client reaches the server's API
// listener: while one connection from 127.0.0.1 is open, its next is
// closed, and 127.0.0.2 still gets /healthz; --metrics-addr counts the
// refusal (certkeeper_connections_refused_total).
func TestServerConnLimits(t *testing.T) {
	if _, err := testsvc.OtherLoopback(); err != nil {
		testsvc.Unavailable(t, "a second loopback address", "127.0.0.2 is on lo on Linux; run this test there", err)
	}
	addr, metricsAddr := "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)), "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t))
	startListening(t, "server listening", "server", "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(),
		"--listen", addr, "--token-file", writeTokens(t), "--max-conns-per-client", "1", "--metrics-addr", metricsAddr)
	healthz := func(from string) error {
		tr := &http.Transport{DialContext: (&net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext, DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	// Accepted (and counted) before the next: the server accepts in the
	// order the connections were made.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if err := healthz("127.0.0.1"); err == nil {
		t.Error("a second connection from 127.0.0.1 was served with --max-conns-per-client 1")
	}
	if err := healthz("127.0.0.2"); err != nil {
		t.Errorf("127.0.0.2 refused while 127.0.0.1 was at its limit: %v", err)
	}
	labels := map[string]string{"listener": addr, "reason": "per_client"}
	if n, ok := metricValue(scrape(t, "http://"+metricsAddr+"/metrics"), "certkeeper_connections_refused_total", labels); !ok || n != 1 {
		t.Errorf("certkeeper_connections_refused_total%v = %v (%v), want 1", labels, n, ok)
	}
}
