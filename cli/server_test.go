package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

const serverToken = "server-test-token-0123456789"

// writeTokens writes a token file holding serverToken.
func writeTokens(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte("# fleet\n"+serverToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// startServer runs "certkeeper server args..." until the test ends and
// waits until it listens.
func startServer(t *testing.T, args ...string) {
	t.Helper()
	startListening(t, "server listening", append([]string{"server"}, args...)...)
}

// pebbleServerArgs point the server at ca, with the API (and http-01) on
// the port Pebble validates http-01 on.
func pebbleServerArgs(ca *testca.CA, storageDir string) (args []string, base string) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort()))
	return []string{"--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", storageDir, "--listen", addr}, "http://" + addr
}

// apiGet asks the server for path with token (none if empty).
func apiGet(t *testing.T, base, path, token string, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %.80s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

// apiCert fetches name and checks the answer: 200, a certificate that
// matches its key and covers name.
func apiCert(t *testing.T, base, name string) (certserver.Certificate, *tls.Certificate) {
	t.Helper()
	code, _, body := apiGet(t, base, "/v1/certificates/"+name, serverToken, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/certificates/%s = %d %s", name, code, body)
	}
	var c certserver.Certificate
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	tc, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		t.Fatalf("answer for %s: %v", name, err)
	}
	if err := tc.Leaf.VerifyHostname(name); err != nil {
		t.Fatalf("answer for %s: %v", name, err)
	}
	return c, &tc
}

// TestServer: the certificate server obtains a certificate from Pebble at
// the first request (http-01 answered on its own --listen) and hands it
// out only with a token: none or a wrong one ⇒ 401, a denied name ⇒ 403,
// a 10 MB body ⇒ 413, a 5,000-byte path ⇒ 414, the server unharmed; each
// key handed out is an audit line.
func TestServer(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir := t.TempDir()
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	args, base := pebbleServerArgs(ca, storageDir)
	startServer(t, append(args, "--profile", "default", "--allow", "a.test", "--token-file", writeTokens(t), "--audit-log", auditLog,
		"--max-ttl", "5m")...)

	if code, _, body := apiGet(t, base, "/healthz", "", nil); code != http.StatusOK {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	for _, tt := range []struct {
		name, path, token string
		body              io.Reader
		want              int
	}{
		{"no token", "/v1/certificates/a.test", "", nil, http.StatusUnauthorized},
		{"wrong token", "/v1/certificates/a.test", "wrong-token-0123456789", nil, http.StatusUnauthorized},
		{"denied", "/v1/certificates/denied.test", serverToken, nil, http.StatusForbidden},
		{"invalid", "/v1/certificates/-a.test", serverToken, nil, http.StatusBadRequest},
		{"10 MB body", "/v1/certificates/a.test", serverToken, bytes.NewReader(make([]byte, 10<<20)), http.StatusRequestEntityTooLarge},
		{"5,000-byte path", "/v1/certificates/" + strings.Repeat("a", 4983), serverToken, nil, http.StatusRequestURITooLong},
	} {
		if code, _, body := apiGet(t, base, tt.path, tt.token, tt.body); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.want)
		}
	}
	if ca.Orders() != 0 {
		t.Errorf("refused requests placed %d orders, want 0", ca.Orders())
	}

	// The server is unharmed: the first request for a.test waits for the
	// issuance, and its answer verifies against Pebble's roots.
	c, tc := apiCert(t, base, "a.test")
	inter := x509.NewCertPool()
	for _, der := range tc.Certificate[1:] {
		cert, _ := x509.ParseCertificate(der)
		inter.AddCert(cert)
	}
	if _, err := tc.Leaf.Verify(x509.VerifyOptions{DNSName: "a.test", Roots: ca.IssuingRootPool(t), Intermediates: inter}); err != nil {
		t.Errorf("handed-out chain: %v", err)
	}
	// --max-ttl 5m: a 90-day certificate's answer would say 3600 without it.
	if c.SelfSigned || c.TTLSeconds < 1 || c.TTLSeconds > 300 || len(c.Names) != 1 || c.Names[0] != "a.test" {
		t.Errorf("answer: names %v self_signed %v ttl %d (want at most --max-ttl, 300)", c.Names, c.SelfSigned, c.TTLSeconds)
	}
	code, hdr, pemBody := apiGet(t, base, "/v1/certificates/a.test?format=pem", serverToken, nil)
	if _, err := tls.X509KeyPair(pemBody, pemBody); code != http.StatusOK || err != nil {
		t.Errorf("format=pem: %d %v (%s)", code, err, hdr.Get("Content-Type"))
	}
	if code, _, _ := apiGet(t, base, "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("/healthz at the end = %d", code)
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	// Metrics on the API listener, behind the same authentication.
	if code, _, _ := apiGet(t, base, "/metrics", "", nil); code != http.StatusUnauthorized {
		t.Errorf("/metrics without a token = %d, want 401", code)
	}
	if code, _, body := apiGet(t, base, "/metrics", serverToken, nil); code != http.StatusOK ||
		!bytes.Contains(body, []byte(`certkeeper_issuance_attempts_total{issuer=`)) || !bytes.Contains(body, []byte("certkeeper_certificates_managed 1")) {
		t.Errorf("/metrics = %d, want 200 with the issuance counted and one certificate managed:\n%.2000s", code, body)
	}

	// The audit writer writes in the background: wait (bounded) for both
	// hand-outs, after the line the log starts with.
	var data []byte
	var lines []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if data, err = os.ReadFile(auditLog); err != nil {
			t.Fatal(err)
		}
		if lines = strings.Split(strings.TrimSpace(string(data)), "\n"); len(lines) >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if len(lines) != 3 || !strings.Contains(lines[0], `"msg":"audit log opened"`) {
		t.Fatalf("audit log: %d lines, want 3 (the start, then one per hand-out):\n%s", len(lines), data)
	}
	lines = lines[1:]
	for _, l := range lines {
		var a struct {
			Time       time.Time
			Name, Who  string
			RemoteAddr string `json:"remote_addr"`
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatal(err)
		}
		if a.Name != "a.test" || a.Who != "token 2" || !strings.HasPrefix(a.RemoteAddr, "127.0.0.1:") || time.Since(a.Time) > time.Minute {
			t.Errorf("audit line %s: want name a.test, who token 2 (line 2 of the file), remote_addr, time", l)
		}
	}
	if fi, err := os.Stat(auditLog); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("audit log mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestServerManaged: a --managed name is obtained at start with no
// request, and with a 60 s Pebble profile renewed with none either.
func TestServerManaged(t *testing.T) {
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"short": {Description: "60 s", ValidityPeriod: 60 * time.Second},
	}})
	storageDir := t.TempDir()
	args, _ := pebbleServerArgs(ca, storageDir)
	p := startLogged(t, binary, "server listening", append([]string{"server"}, append(args, "--profile", "short", "--managed", "m.test", "--token-file", writeTokens(t))...)...)

	waitStatus := func(what string, deadline time.Time, ok func(certStatus) bool) certStatus {
		t.Helper()
		for time.Now().Before(deadline) {
			for _, s := range statusOf(t, storageDir) {
				if len(s.Names) > 0 && s.Names[0] == "m.test" && ok(s) {
					return s
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatalf("m.test was not %s by %s", what, deadline.Format(time.TimeOnly))
		return certStatus{}
	}
	first := waitStatus("obtained", time.Now().Add(30*time.Second), func(certStatus) bool { return true })
	if first.OnDemand {
		t.Error("managed certificate is marked on-demand (it would stop being renewed when unused)")
	}
	renewed := waitStatus("renewed", first.NotAfter, func(s certStatus) bool { return s.NotAfter.After(first.NotAfter) })
	t.Logf("renewed %s before the first certificate expired", time.Until(first.NotAfter).Round(time.Second))
	if renewed.NotAfter.Sub(first.NotAfter) <= 0 {
		t.Errorf("renewed not_after %s, want after %s", renewed.NotAfter, first.NotAfter)
	}
	// Each renewal reaches stderr once: one log line per new not_after.
	within(5*time.Second, func() bool { return strings.Contains(p.output(), "certificate renewed") })
	seen := map[string]bool{}
	for _, l := range strings.Split(p.output(), "\n") {
		if !strings.Contains(l, "renewed") || strings.Contains(l, "(kept renewed from start)") {
			continue // the start-up summary's line
		}
		_, notAfter, _ := strings.Cut(l, "not_after=")
		if !strings.Contains(l, `msg="certificate renewed"`) || seen[notAfter] {
			t.Errorf("renewal reported twice, or not as one log line: %s\n%s", l, p.output())
		}
		seen[notAfter] = true
	}
	if len(seen) == 0 {
		t.Errorf("no renewal on stderr:\n%s", p.output())
	}
}

// TestServerCertFileAndFallback: a --cert-file certificate (made by
// "certkeeper selfsigned") is handed out for its name and reloaded when its
// files change; with --self-signed-fallback a refused name gets a
// self-signed certificate marked so.
func TestServerCertFileAndFallback(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "manual.pem"), filepath.Join(dir, "manual.key")
	selfSigned := func() {
		t.Helper()
		r := ck(t, 30*time.Second, "selfsigned", "-d", "manual.test", "-d", "www.manual.test", "--valid-for", "30d", "--cert-out", certFile, "--key-out", keyFile)
		if r.code != 0 {
			t.Fatalf("selfsigned: exit %d\n%s", r.code, r.stderr)
		}
	}
	selfSigned()
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("selfsigned key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	port := testsvc.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	startServer(t, "--ca", "local", "--storage", t.TempDir(), "--listen", "127.0.0.1:"+strconv.Itoa(port), "--token-file", writeTokens(t),
		"--allow", "a.test", "--cert-file", certFile+":"+keyFile, "--cert-file-check-every", "100ms", "--self-signed-fallback")

	onDisk, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, tc := apiCert(t, base, "www.manual.test")
	if !tc.Leaf.Equal(onDisk.Leaf) || c.SelfSigned {
		t.Fatalf("www.manual.test: served serial %s (self_signed %v), want the file's %s", tc.Leaf.SerialNumber, c.SelfSigned, onDisk.Leaf.SerialNumber)
	}
	selfSigned() // new files, new certificate
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, tc := apiCert(t, base, "manual.test")
		if !tc.Leaf.Equal(onDisk.Leaf) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replaced certificate files were not reloaded within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	c, tc = apiCert(t, base, "denied.test")
	if !c.SelfSigned || tc.Leaf.Issuer.String() != tc.Leaf.Subject.String() {
		t.Errorf("denied.test with --self-signed-fallback: self_signed %v, issuer %s; want a self-signed certificate marked so", c.SelfSigned, tc.Leaf.Issuer)
	}
	if c, _ := apiCert(t, base, "a.test"); c.SelfSigned {
		t.Error("a.test (allowed, local CA) was answered self-signed")
	}
}

// TestSelfSignedOutDir: selfsigned --out-dir writes the pair where cert
// issue would, and refuses half a pair of file flags; status --cert-file
// reports a file certificate.
func TestSelfSignedOutDir(t *testing.T) {
	out := t.TempDir()
	if r := ck(t, 30*time.Second, "selfsigned", "-d", "fallback.invalid", "--out-dir", out); r.code != 0 {
		t.Fatalf("selfsigned --out-dir: exit %d\n%s", r.code, r.stderr)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, "certs", "fallback.invalid.pem"), filepath.Join(out, "private", "fallback.invalid.key"))
	if err != nil {
		t.Fatal(err)
	}
	if got := pair.Leaf.NotAfter.Sub(pair.Leaf.NotBefore).Round(24 * time.Hour); got != 365*24*time.Hour {
		t.Errorf("default validity %s, want 365 days", got)
	}
	if r := ck(t, 30*time.Second, "selfsigned", "-d", "a.test", "--cert-out", filepath.Join(out, "x.pem")); r.code != 2 {
		t.Errorf("--cert-out without --key-out: exit %d, want 2", r.code)
	}

	// status --cert-file reports a certificate file: issuer file, and fine
	// with its 5 days all left (status.TestIsExpiring has when it is not).
	cert, key := filepath.Join(out, "short.pem"), filepath.Join(out, "short.key")
	if r := ck(t, 30*time.Second, "selfsigned", "-d", "short.test", "--valid-for", "5d", "--cert-out", cert, "--key-out", key); r.code != 0 {
		t.Fatalf("selfsigned: exit %d\n%s", r.code, r.stderr)
	}
	r := ck(t, 30*time.Second, "status", "--json", "--storage", t.TempDir(), "--cert-file", cert+":"+key)
	var list []certStatus
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 {
		t.Fatalf("status --cert-file: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if s := list[0]; s.Issuer != "file" || s.State != "fine" || len(s.Names) != 1 || s.Names[0] != "short.test" {
		t.Errorf("status --cert-file = %+v, want short.test, issuer file, fine", s)
	}
}

// TestServerConfig: the server's settings come from --config as well,
// lists included: a managed name (no policy allows any name, so only
// "managed" can have obtained it), the fallback, the audit log.
func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	port := testsvc.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cfg := filepath.Join(dir, "server.yaml")
	yaml := "listen: 127.0.0.1:" + strconv.Itoa(port) + "\ntoken_file: " + writeTokens(t) + "\nca: [local]\nstorage: " + filepath.Join(dir, "st") +
		"\nmanaged: [m.test, \"n.test,www.n.test\"]\nself_signed_fallback: true\nissue_timeout: 5s\naudit_log: " + filepath.Join(dir, "audit.log") + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	startServer(t, "--config", cfg)
	deadline := time.Now().Add(20 * time.Second)
	for _, name := range []string{"m.test", "www.n.test"} {
		for {
			c, _ := apiCert(t, base, name)
			if !c.SelfSigned {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("managed %s was not obtained within 20 s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if c, _ := apiCert(t, base, "other.test"); !c.SelfSigned {
		t.Error("other.test (no policy) was not answered self-signed")
	}
	waitAudit(t, filepath.Join(dir, "audit.log"), `"name":"other.test"`)
}

// waitAudit waits (at most 5 s) until the audit log file holds want: the
// server writes audit lines in the background, a moment after each
// hand-out.
func waitAudit(t *testing.T, file, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(file)
		if err == nil && strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log %s does not hold %s within 5 s: %v\n%s", file, want, err, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServerProxyProtocolFrom: behind a TCP load balancer that sends PROXY
// protocol headers (--proxy-protocol-from), the audit log records the
// client address the header names, and --max-conns-per-client holds the
// clients the headers name, not the balancer; a connection from that
// address without a header is closed, and a bad prefix is refused.
func TestServerProxyProtocolFrom(t *testing.T) {
	if r := ck(t, 30*time.Second, "server", "--check-config", "--proxy-protocol-from", "127.0.0.1/40"); r.code != 1 ||
		!strings.Contains(r.stderr, `--proxy-protocol-from "127.0.0.1/40"`) {
		t.Errorf("a bad prefix: exit %d, stderr %q; want 1 naming the flag", r.code, r.stderr)
	}
	port := testsvc.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	auditLog := filepath.Join(t.TempDir(), "audit.log")
	p := startLogged(t, binary, "server listening", "server", "--ca", "local", "--storage", t.TempDir(), "--listen", addr, "--token-file", writeTokens(t),
		"--allow", "a.test", "--audit-log", auditLog, "--proxy-protocol-from", "127.0.0.1", "--max-conns-per-client", "1")
	if want := "PROXY:      header required from 127.0.0.1, whose client address is used (--proxy-protocol-from)"; !strings.Contains(p.output(), want) {
		t.Errorf("the start-up summary does not say %q:\n%s", want, p.output())
	}
	held, err := net.DialTimeout("tcp", addr, 10*time.Second) // another client's connection, open throughout
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// A request answered on it, kept alive: the server has read its header
	// and counted it for 198.51.100.8 before the test goes on.
	held.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := held.Write([]byte("PROXY TCP4 198.51.100.8 127.0.0.1 40001 8999\r\nGET /healthz HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if resp, err := http.ReadResponse(bufio.NewReader(held), nil); err != nil {
		t.Fatalf("a kept-alive request through the balancer: %v", err)
	} else {
		resp.Body.Close()
	}
	get := func(header string) (*http.Response, error) {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		req := header + "GET /v1/certificates/a.test HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + serverToken + "\r\nConnection: close\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get("PROXY TCP4 198.51.100.9 127.0.0.1 40000 8999\r\n")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("through the balancer: %v %v; want 200", resp, err)
	}
	if resp, err := get(""); err == nil {
		t.Errorf("from the balancer's address without a header: %s, want the connection closed", resp.Status)
	}
	if resp, err := get("PROXY TCP4 198.51.100.8 127.0.0.1 40002 8999\r\n"); err == nil {
		t.Errorf("a second connection of the client holding one (--max-conns-per-client 1): %s, want it closed", resp.Status)
	}
	if !strings.Contains(p.output(), "connection limit of one client reached") || !strings.Contains(p.output(), "client=198.51.100.8/32") {
		t.Errorf("no warning naming the client over its limit:\n%s", p.output())
	}
	var data []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if data, _ = os.ReadFile(auditLog); bytes.Contains(data, []byte(`"name":"a.test"`)) {
			break
		}
	}
	if !bytes.Contains(data, []byte(`"remote_addr":"198.51.100.9:40000"`)) {
		t.Errorf("audit log does not name the client the header gave:\n%s", data)
	}
}

// TestServerManagedWildcardNeedsDNS: a --managed wildcard that no
// challenge set up can validate (no --dns, no dns-persist-01) is refused
// at start, where it failed at every retry; from the local CA it is not.
func TestServerManagedWildcardNeedsDNS(t *testing.T) {
	r := ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--allow", "a.example", "--storage", t.TempDir(), "--managed", "a.example,*.a.example")
	if r.code != 1 || !strings.Contains(r.stderr, "--managed a.example,*.a.example: a wildcard is validated only through DNS: give --dns") {
		t.Errorf("--managed wildcard without DNS: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--ca", "local", "--storage", t.TempDir(), "--managed", "*.a.example"); r.code != 0 {
		t.Errorf("--managed wildcard from the local CA: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestAuditOnStderrJSON: without --audit-log the audit goes to stderr in
// the log's format: under --log-format json each hand-out is a record of
// its own, not text inside another record's message (a container trial
// could not parse its audit trail).
func TestAuditOnStderrJSON(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeLoopbackPort(t)))
	p := startLogged(t, binary, "server listening", "server", "--ca", "local", "--allow", "a.test", "--listen", addr,
		"--token-file", writeTokens(t), "--storage", t.TempDir(), "--log-format", "json")
	apiCert(t, "http://"+addr, "a.test")
	var audit map[string]any
	for deadline := time.Now().Add(5 * time.Second); audit == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for l := range strings.Lines(p.output()) {
			var rec map[string]any
			if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "key handed out" {
				audit = rec
			}
		}
	}
	if audit == nil || audit["log"] != "audit" || audit["name"] != "a.test" || audit["who"] != "token 2" {
		t.Errorf("no JSON audit record of its own on stderr (got %v):\n%s", audit, p.output())
	}
}
