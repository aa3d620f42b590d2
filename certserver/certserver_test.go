package certserver_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"golang.org/x/time/rate"
)

const (
	token1 = "first-token-0123456789"
	token2 = "second-token-0123456789"
)

// localServer is the API over a Manager with the local CA.
func localServer(t *testing.T, m *certkeeper.Manager) (*httptest.Server, *testsvc.Buffer) {
	t.Helper()
	if m == nil {
		st := filestore.New(t.TempDir())
		m = &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	}
	t.Cleanup(func() { m.Close() })
	audit := &testsvc.Buffer{}
	h := &certserver.Handler{Manager: m, Tokens: []string{token1, "", token2}, Audit: slog.New(slog.NewJSONHandler(audit, nil)), IssueTimeout: time.Second}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, audit
}

func get(t *testing.T, url, tok string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// TestHandler: status codes for each kind of request, the JSON and PEM
// answers, and one audit line per key handed out, naming the token.
func TestHandler(t *testing.T) {
	s, audit := localServer(t, nil)
	for _, tt := range []struct {
		name, path, token string
		want              int
	}{
		{"health", "/healthz", "", 200},
		{"no token", "/v1/certificates/a.test", "", 401},
		{"wrong token", "/v1/certificates/a.test", "wrong-token-0123456789", 401},
		{"empty line is no token", "/v1/certificates/a.test", " ", 401},
		{"denied", "/v1/certificates/b.test", token1, 403},
		{"invalid name", "/v1/certificates/a..test", token1, 400},
		{"slash in name", "/v1/certificates/a.test/x", token1, 400},
		{"unknown format", "/v1/certificates/a.test?format=der", token1, 400},
		{"unknown path", "/v2/x", token1, 404},
		{"long path", "/v1/certificates/" + strings.Repeat("a", 5000), token1, 414},
		{"json", "/v1/certificates/a.test", token1, 200},
		{"upper case", "/v1/certificates/A.Test.", token2, 200},
		{"pem", "/v1/certificates/a.test?format=pem", token2, 200},
		{"no staple", "/v1/ocsp/a.test", token1, 404},
		{"metrics without a token", "/metrics", "", 401},
		{"metrics not configured", "/metrics", token1, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, s.URL+tt.path, tt.token)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s = %d %s, want %d", tt.path, resp.StatusCode, body, tt.want)
			}
			if tt.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}

	resp, body := get(t, s.URL+"/v1/certificates/a.test", token1)
	var c certserver.Certificate
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	tc, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		t.Fatalf("answer's cert and key: %v", err)
	}
	if len(c.Names) != 1 || c.Names[0] != "a.test" || c.SelfSigned || c.TTLSeconds < 1 || !c.NotAfter.Equal(tc.Leaf.NotAfter) {
		t.Errorf("answer = names %v self_signed %v ttl %d not_after %s", c.Names, c.SelfSigned, c.TTLSeconds, c.NotAfter)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	_, pemBody := get(t, s.URL+"/v1/certificates/a.test?format=pem", token1)
	if _, err := tls.X509KeyPair(pemBody, pemBody); err != nil {
		t.Errorf("format=pem: %v", err)
	}

	// One line per hand-out (json, upper case, pem, json, pem), each
	// naming the token by its line and the remote address.
	lines := strings.Split(strings.TrimSpace(audit.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("audit log has %d lines, want 5:\n%s", len(lines), audit)
	}
	for i, want := range []string{"token 1", "token 3", "token 3", "token 1", "token 1"} {
		var l struct{ Name, Who, Remote_addr, Msg string }
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil {
			t.Fatal(err)
		}
		if l.Name != "a.test" || l.Who != want || !strings.HasPrefix(l.Remote_addr, "127.0.0.1:") {
			t.Errorf("audit line %d = %s, want name a.test, who %q, remote_addr", i, lines[i], want)
		}
	}
	if strings.Contains(audit.String(), token1) || strings.Contains(audit.String(), "PRIVATE KEY") {
		t.Error("the audit log contains a token or a key")
	}
}

// TestLimits: a 10 MB body gets 413 and a 5,000-byte path 414, without
// harm: the next request is answered.
func TestLimits(t *testing.T) {
	s, _ := localServer(t, nil)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/v1/certificates/a.test", bytes.NewReader(make([]byte, 10<<20)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token1)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("10 MB body: %d, want 413", resp.StatusCode)
	}
	// A chunked body (no Content-Length) is cut off at the limit too.
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL+"/v1/certificates/a.test", io.LimitReader(zeros{}, 10<<20))
	req.Header.Set("Authorization", "Bearer "+token1)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("10 MB chunked body: %d, want 413", resp.StatusCode)
	}
	if resp, body := get(t, s.URL+"/"+strings.Repeat("x", 5000), token1); resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("5,000-byte path: %d %s, want 414", resp.StatusCode, body)
	}
	if resp, body := get(t, s.URL+"/v1/certificates/a.test", token1); resp.StatusCode != http.StatusOK {
		t.Errorf("after the limits: %d %s, want 200", resp.StatusCode, body)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestUnavailable: while the CA hangs, a first request waits
// IssueTimeout and gets 503 with Retry-After; the issuance goes on and a
// later request gets the certificate. With SelfSignedFallback, a refused
// name gets a self-signed certificate marked so.
func TestUnavailable(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	fp := testca.NewFaultProxy(t, ca)
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{
		Policy: policy.Allowlist("a.test"), Storage: st, SelfSignedFallback: false,
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: fp.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: "default",
			ChallengeOrder: []string{acmeca.TLSALPN01}}},
	}
	s, _ := localServer(t, m)
	fp.Pause()
	start := time.Now()
	resp, body := get(t, s.URL+"/v1/certificates/a.test", token1)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("CA paused: %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if took := time.Since(start); took < time.Second || took > 10*time.Second {
		t.Errorf("503 after %s, want after the 1 s issue timeout", took)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q while the issuance goes on, want 2: it is often done a second later", ra)
	}
	fp.Down()
	resp, _ = get(t, s.URL+"/v1/certificates/a.test", token1)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("CA down: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestSelfSignedFallback: a refused name gets a self-signed certificate,
// marked self_signed, that is never stored.
func TestSelfSignedFallback(t *testing.T) {
	dir := t.TempDir()
	st := filestore.New(dir)
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, SelfSignedFallback: true}
	s, _ := localServer(t, m)
	resp, body := get(t, s.URL+"/v1/certificates/denied.test", token1)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refused name with fallback: %d %s, want 200", resp.StatusCode, body)
	}
	var c certserver.Certificate
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	tc, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		t.Fatal(err)
	}
	if !c.SelfSigned || tc.Leaf.CheckSignature(tc.Leaf.SignatureAlgorithm, tc.Leaf.RawTBSCertificate, tc.Leaf.Signature) != nil || c.TTLSeconds > 60 {
		t.Errorf("answer: self_signed %v, ttl %d; want a self-signed certificate, true, at most 60 s", c.SelfSigned, c.TTLSeconds)
	}
	if keys, _ := st.List(t.Context(), ""); strings.Contains(strings.Join(keys, " "), "denied.test") {
		t.Errorf("the fallback certificate was stored: %v", keys)
	}
	// The handshake path falls back too.
	if got, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "denied.test"}); err != nil || got.Leaf.Subject.Organization[0] != "certkeeper self-signed" {
		t.Errorf("GetCertificate(denied.test) = %v, %v; want the self-signed fallback", got, err)
	}
}

// TestBodyRefusedUnread: a request that announces a body it does not send
// is answered at once, without the body being read, and its connection
// closed: 401 before authentication, 413 after (the API takes no body),
// on every path; nothing waits for the client.
func TestBodyRefusedUnread(t *testing.T) {
	s, _ := localServer(t, nil)
	addr := strings.TrimPrefix(s.URL, "http://")
	for _, tt := range []struct{ name, req, want string }{
		{"no token", "GET /v1/certificates/a.test HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", " 401 "},
		{"token", "GET /v1/certificates/a.test HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token1 + "\r\nContent-Length: 1000\r\n\r\n", " 413 "},
		{"chunked", "GET /v1/ocsp/a.test HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token1 + "\r\nTransfer-Encoding: chunked\r\n\r\n", " 413 "},
		{"healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", " 413 "},
		{"http-01", "GET /.well-known/acme-challenge/x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n", " 413 "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
			if _, err := io.WriteString(conn, tt.req); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			status, err := br.ReadString('\n')
			if err != nil || !strings.Contains(status, tt.want) {
				t.Fatalf("answer %q, %v; want%swithout the body being sent", status, err, tt.want)
			}
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Errorf("the connection stayed open after the answer: %v", err)
			}
		})
	}
}

// TestWrongTokenSaysSo: a bearer token the server does not hold (mistyped,
// or revoked) was answered "a bearer token or a client certificate is
// required", as if none had been sent; it now says the token was not
// accepted (RFC 6750's invalid_token), without echoing it.
func TestWrongTokenSaysSo(t *testing.T) {
	s, _ := localServer(t, nil)
	const wrong = "wrong-token-0123456789"
	resp, body := get(t, s.URL+"/v1/certificates/a.test", wrong)
	if resp.StatusCode != 401 || !strings.Contains(string(body), "not accepted") || strings.Contains(string(body), wrong) ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Errorf("wrong token: %d %q, WWW-Authenticate %q; want 401 saying the token was not accepted, invalid_token, no token echoed",
			resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	resp, body = get(t, s.URL+"/v1/certificates/a.test", "")
	if resp.StatusCode != 401 || !strings.Contains(string(body), "is required") || strings.Contains(resp.Header.Get("WWW-Authenticate"), "error=") {
		t.Errorf("no token: %d %q, WWW-Authenticate %q; want 401 saying one is required", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
}

// TestChallengesOnly: the handler of a plain-HTTP listener beside an HTTPS
// API answers /healthz and http-01 (404 for a token no issuance holds), and
// 403 naming HTTPS to every API request, a valid token or not, with no key
// in the answer; a body is refused unread as on the API.
func TestChallengesOnly(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	h := &certserver.Handler{Manager: m, Tokens: []string{token1}}
	s := httptest.NewServer(h.ChallengesOnly())
	t.Cleanup(s.Close)
	for _, tt := range []struct {
		path, token string
		want        int
	}{
		{"/healthz", "", http.StatusOK},
		{"/.well-known/acme-challenge/unknown-token", "", http.StatusNotFound},
		{"/v1/certificates/a.test", token1, http.StatusForbidden},
		{"/v1/certificates/a.test", "", http.StatusForbidden},
		{"/v1/ocsp/a.test", token1, http.StatusForbidden},
		{"/metrics", token1, http.StatusForbidden},
		{"/nowhere", "", http.StatusNotFound},
	} {
		resp, body := get(t, s.URL+tt.path, tt.token)
		if resp.StatusCode != tt.want || tt.want == http.StatusForbidden && !strings.Contains(string(body), "HTTPS") || strings.Contains(string(body), "PRIVATE KEY") {
			t.Errorf("GET %s (token %v) = %d %q; want %d", tt.path, tt.token != "", resp.StatusCode, body, tt.want)
		}
	}
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(conn, "GET /v1/certificates/a.test HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if status, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(status, " 403 ") {
		t.Errorf("API request with a body: %q, %v; want 403 without the body being sent", status, err)
	}
}

// TestScopeCoversEveryName: a scoped token gets a certificate's key only
// when its scope covers every name on it, since the key serves them all:
// not n.shop.test's when that certificate also covers secret.test, nor
// a.wild.test's when it is *.wild.test's. A HEAD carries no key and
// writes no "key handed out" line.
func TestScopeCoversEveryName(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Policy: policy.Allowlist("*.shop.test", "secret.test", "*.wild.test", "wild.test"), Storage: st,
		Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, Wildcards: []string{"*.wild.test"}}
	t.Cleanup(func() { m.Close() })
	if err := m.Cert(t.Context(), "n.shop.test", "secret.test"); err != nil {
		t.Fatal(err)
	}
	const token3 = "third-token-0123456789"
	audit := &testsvc.Buffer{}
	h := &certserver.Handler{Manager: m, Audit: slog.New(slog.NewJSONHandler(audit, nil)),
		Tokens: []string{token1 + " names=*.shop.test", token2 + " names=*.test", token3 + " names=a.wild.test,wild.test"}}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	for _, tt := range []struct {
		token, name string
		want        int
		body        string
	}{
		{token1, "n.shop.test", 403, "its certificate also covers secret.test, outside its names="},
		{token2, "n.shop.test", 200, ""},
		{token3, "a.wild.test", 403, "its certificate also covers *.wild.test"},
		{token2, "a.wild.test", 200, ""},
	} {
		resp, body := get(t, s.URL+"/v1/certificates/"+tt.name, tt.token)
		if resp.StatusCode != tt.want || !strings.Contains(string(body), tt.body) || (tt.want == 403 && strings.Contains(string(body), "PRIVATE KEY")) {
			t.Errorf("%s with %s: %d %.120s, want %d %q", tt.name, strings.Fields(tt.token)[0][:5], resp.StatusCode, body, tt.want, tt.body)
		}
	}
	if !strings.Contains(audit.String(), `"msg":"key refused: the certificate covers names outside the token's scope","name":"n.shop.test","outside":"secret.test","who":"token 1"`) {
		t.Errorf("audit log:\n%s\nwant the refusal of n.shop.test to token 1, naming secret.test", audit)
	}
	handedOut := strings.Count(audit.String(), `"key handed out"`)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodHead, s.URL+"/v1/certificates/n.shop.test", nil)
	req.Header.Set("Authorization", "Bearer "+token2)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := strings.Count(audit.String(), `"key handed out"`); resp.StatusCode != 200 || n != handedOut {
		t.Errorf("HEAD: %d, %d more \"key handed out\" lines; want 200 and none", resp.StatusCode, n-handedOut)
	}
}

// TestOrderLimitRefusal: a name held back by the server's own order limit
// (Cluster.OrderLimit, --order-limit) gets 503 saying so, with a
// Retry-After at the end of the window, not the CA blamed and 10 s.
func TestOrderLimitRefusal(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{
		Policy: policy.Allowlist("*.ol.test"), Storage: st, Cluster: certkeeper.Cluster{OrderLimit: 1, OrderWindow: time.Hour},
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Profile: "default",
			ChallengeOrder: []string{acmeca.HTTP01}}},
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	http01 := &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second}
	go http01.Serve(ln)
	t.Cleanup(func() { http01.Close() })
	s, _ := localServer(t, m)
	if resp, body := get(t, s.URL+"/v1/certificates/a.ol.test", token1); resp.StatusCode != 200 {
		t.Fatalf("first name: %d %s", resp.StatusCode, body)
	}
	resp, body := get(t, s.URL+"/v1/certificates/b.ol.test", token1)
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 503 || !strings.Contains(string(body), "the server's own limit on new orders (1 new orders per 1h0m0s for the cluster) is reached until") ||
		secs < 3500 || secs > 3600 {
		t.Errorf("second name over the limit: %d, Retry-After %q, %s; want 503 naming the server's limit, Retry-After about 3600", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestLimitClients: with LimitClients, the web servers asking for new
// names count against the Manager's ClientLimit by their address: the
// one over it gets 503 with the reason and a Retry-After of when its
// budget refills; without, a web server asks for every name (a fleet
// trial's --client-limit 2/1h let five through).
func TestLimitClients(t *testing.T) {
	for _, limited := range []bool{true, false} {
		st := filestore.New(t.TempDir())
		m := &certkeeper.Manager{Policy: policy.Allowlist("*.lc.test"), Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
			ClientLimit: &policy.IPLimiter{Rate: rate.Every(time.Hour), Burst: 2}}
		t.Cleanup(func() { m.Close() })
		h := &certserver.Handler{Manager: m, Tokens: []string{token1}, Audit: slog.New(slog.DiscardHandler), LimitClients: limited}
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		var codes []int
		var last []byte
		var retry string
		for _, name := range []string{"a", "b", "c"} {
			resp, body := get(t, s.URL+"/v1/certificates/"+name+".lc.test", token1)
			codes, last, retry = append(codes, resp.StatusCode), body, resp.Header.Get("Retry-After")
		}
		secs, _ := strconv.Atoi(retry)
		switch {
		case limited && (codes[2] != 503 || !strings.Contains(string(last), "too many new names from this client") || secs < 3500 || secs > 3600):
			t.Errorf("LimitClients, a third new name at 2 an hour: %v, Retry-After %q, %s; want 503, too many new names, Retry-After about 3600", codes, retry, last)
		case !limited && codes[2] != 200:
			t.Errorf("without LimitClients: %v %s; want every name", codes, last)
		}
	}
}
