package lua

import (
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// initConf is an http block whose init_by_lua_block calls init with the
// options in %[1]s, and a plain server on 127.0.0.1:%[2]d to know nginx
// is up.
const initConf = `
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ shared_dict = "certkeeper", %[1]s }) }
  server {
    listen 127.0.0.1:%[2]d;
    location / { return 200 "up\n"; }
  }
`

// TestInitServerSetting: init accepts https:// anywhere and plain http://
// (or the older bare host:port) only to a loopback server; anything else
// keeps nginx from starting, with a message naming the setting. A client
// certificate needs https://, and an https:// server given by IP address
// needs tls_server_name (nginx checks certificates by DNS name only). A
// shared_dict that nginx.conf does not declare is named, with the line to
// add. An unknown option (a typo, which was ignored) and a count that is
// not a positive number (which failed at every handshake) are refused.
func TestInitServerSetting(t *testing.T) {
	for _, tt := range []struct {
		name, options string
		want          []string // in nginx's output; none: nginx starts
	}{
		{name: "http loopback", options: `server = "http://127.0.0.1:8999"`},
		{name: "bare host:port loopback", options: `server = "127.0.0.1:8999"`},
		{name: "http 127/8", options: `server = "http://127.8.9.10:8999/"`},
		{name: "http ::1", options: `server = "http://[::1]:8999"`},
		{name: "http localhost", options: `server = "http://localhost:8999"`},
		{name: "https by name", options: `server = "https://certkeeper.internal:8999"`},
		{name: "https by address", options: `server = "https://10.0.0.5:8999", tls_server_name = "certkeeper.internal"`},
		{name: "http remote", options: `server = "http://10.0.0.5:8999"`,
			want: []string{`certkeeper.init: server = "http://10.0.0.5:8999"`, "loopback", "https://"}},
		{name: "bare host:port remote", options: `server = "10.0.0.5:8999"`,
			want: []string{`certkeeper.init: server = "10.0.0.5:8999"`, "loopback"}},
		{name: "http remote name", options: `server = "http://certkeeper.internal:8999"`,
			want: []string{`certkeeper.init: server = "http://certkeeper.internal:8999"`, "loopback"}},
		{name: "http name under 127", options: `server = "http://127.0.0.1.example.com:8999"`,
			want: []string{`certkeeper.init: server = "http://127.0.0.1.example.com:8999"`, "loopback"}},
		{name: "http 127 out of range", options: `server = "http://127.0.0.256:8999"`,
			want: []string{`certkeeper.init: server = "http://127.0.0.256:8999"`, "loopback"}},
		{name: "https by address without name", options: `server = "https://10.0.0.5:8999"`,
			want: []string{`certkeeper.init: server = "https://10.0.0.5:8999"`, "tls_server_name"}},
		{name: "other scheme", options: `server = "ftp://127.0.0.1:8999"`,
			want: []string{`certkeeper.init: server = "ftp://127.0.0.1:8999"`}},
		{name: "path", options: `server = "https://certkeeper.internal:8999/api"`,
			want: []string{`certkeeper.init: server = "https://certkeeper.internal:8999/api"`}},
		{name: "client cert over http", options: `server = "http://127.0.0.1:8999", client_cert = "/c.pem", client_key = "/c.key"`,
			want: []string{"certkeeper.init: client_cert", "https://"}},
		{name: "client cert without key", options: `server = "https://certkeeper.internal:8999", client_cert = "/c.pem"`,
			want: []string{"certkeeper.init: client_cert and client_key"}},
		{name: "shared dict not declared", options: `server = "http://127.0.0.1:8999", shared_dict = "nope"`,
			want: []string{`certkeeper.init: shared_dict "nope" names no lua_shared_dict`, "lua_shared_dict nope 10m;"}},
		{name: "unknown option", options: `server = "http://127.0.0.1:8999", tokn = "x"`,
			want: []string{"certkeeper.init: unknown option tokn", "token"}},
		{name: "url instead of server", options: `url = "https://certkeeper.internal:8999"`,
			want: []string{"certkeeper.init: unknown option url", "server"}},
		{name: "timeout as a string", options: `server = "http://127.0.0.1:8999", timeout = "40s"`,
			want: []string{"certkeeper.init: timeout = 40s: want a number", "milliseconds"}},
		{name: "error_ttl zero", options: `server = "http://127.0.0.1:8999", error_ttl = 0`,
			want: []string{"certkeeper.init: error_ttl = 0: want a number, at least 1 (seconds)"}},
		{name: "all options", options: `server = "https://certkeeper.internal:8999", tls_server_name = "certkeeper.internal",
			token = "t", lru_size = 10, timeout = 40000, connect_timeout = 2000, denied_ttl = 60, error_ttl = 10,
			allow_domain = function(name) return true end`},
		{name: "fallbacks", options: `server = "http://127.0.0.1:8999", fallbacks = { "http://127.0.0.2:8999", "https://b.internal:8999" }`},
		{name: "fallbacks not a list", options: `server = "http://127.0.0.1:8999", fallbacks = "http://127.0.0.2:8999"`,
			want: []string{"certkeeper.init: fallbacks must be a list of server URLs"}},
		{name: "fallback remote http", options: `server = "http://127.0.0.1:8999", fallbacks = { "http://10.0.0.6:8999" }`,
			want: []string{`certkeeper.init: fallbacks[1] = "http://10.0.0.6:8999"`, "loopback"}},
		{name: "client cert missing", options: `server = "https://certkeeper.internal:8999", client_cert = "/nonexistent/c.pem", client_key = "/nonexistent/c.key"`,
			want: []string{"certkeeper.init: client_cert", "/nonexistent/c.pem"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port := testsvc.FreePort(t)
			opts := testsvc.NginxOptions{HTTP: fmt.Sprintf(initConf, tt.options, port),
				Ready: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}}
			if len(tt.want) == 0 {
				testsvc.Nginx(t, opts)
				return
			}
			out := testsvc.NginxFails(t, opts)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("init({%s}): nginx output lacks %q:\n%s", tt.options, w, out)
				}
			}
		})
	}
}

// answer is the server's JSON answer (docs/api.md), as the fixture below
// crafts it.
type answer struct {
	Names      []string  `json:"names,omitempty"`
	Cert       string    `json:"cert"`
	Key        string    `json:"key"`
	NotAfter   time.Time `json:"not_after"`
	TTLSeconds int64     `json:"ttl_seconds"`
}

// craft makes a self-signed certificate with dnsNames (and common name cn)
// and the answer stating names for it.
func craft(t *testing.T, cn string, dnsNames, names []string) answer {
	t.Helper()
	cert, key, notAfter := testsvc.SelfSignedPEM(t, cn, dnsNames...)
	return answer{Names: names, NotAfter: notAfter.UTC().Truncate(time.Second), TTLSeconds: 3600, Cert: cert, Key: key}
}

// TestCertificateNameCheck: the plugin serves a certificate from the
// server only if both the names the server states and the certificate
// itself (its subject alternative names, as OpenSSL's X509_check_host
// reads them) cover the name asked for; otherwise it serves the fallback
// and logs why. The server here is a test fixture answering crafted JSON:
// a real certkeeper server never answers a certificate for other names,
// which is what the check guards against.
func TestCertificateNameCheck(t *testing.T) {
	cases := []struct {
		name   string // asked for (SNI)
		answer answer
		served bool
	}{
		{"right.test", craft(t, "right.test", []string{"right.test"}, []string{"right.test"}), true},
		{"a.wild.test", craft(t, "*.wild.test", []string{"*.wild.test"}, []string{"*.wild.test"}), true},
		{"b.multi.test", craft(t, "a.multi.test", []string{"a.multi.test", "b.multi.test"}, []string{"a.multi.test", "b.multi.test"}), true},
		// The server states the name, the certificate is for another.
		{"lying.test", craft(t, "other.test", []string{"other.test"}, []string{"lying.test"}), false},
		// The certificate covers the name, the server states others.
		{"stated.test", craft(t, "stated.test", []string{"stated.test"}, []string{"other.test"}), false},
		// A wildcard covers one label.
		{"a.b.deep.test", craft(t, "*.deep.test", []string{"*.deep.test"}, []string{"*.deep.test"}), false},
		// The common name alone does not count (RFC 6125 6.4.4, as Go's
		// VerifyHostname and certclient).
		{"cn.test", craft(t, "cn.test", nil, []string{"cn.test"}), false},
		// No stated names at all.
		{"nonames.test", craft(t, "nonames.test", []string{"nonames.test"}, nil), false},
	}
	answers := map[string]answer{}
	for _, c := range cases {
		answers[c.name] = c.answer
	}
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := answers[strings.TrimPrefix(r.URL.Path, "/v1/certificates/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	defer fixture.Close()

	dir := t.TempDir()
	// The bare host:port form (plain HTTP to loopback) is the one every
	// version of the plugin reads, so that this test shows what an older
	// one served.
	ngx, addr := pluginNginx(t, dir, strings.TrimPrefix(fixture.URL, "http://"))

	for _, c := range cases {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: c.name, InsecureSkipVerify: true})
		if err != nil {
			t.Errorf("handshake for %s: %v", c.name, err)
			continue
		}
		leaf := conn.ConnectionState().PeerCertificates[0]
		conn.Close()
		fallback := leaf.Subject.CommonName == "fallback.invalid"
		if c.served && fallback {
			t.Errorf("%s: nginx served the fallback, want the server's certificate (names %q, SANs %q)", c.name, c.answer.Names, leaf.DNSNames)
		}
		if !c.served && !fallback {
			t.Errorf("%s: nginx served the server's certificate for %q (stated names %q), want the fallback", c.name, leaf.DNSNames, c.answer.Names)
		}
	}
	log, _ := os.ReadFile(ngx.ErrorLog())
	for _, c := range cases {
		want := "certkeeper: fetching " + c.name + ": the server answered a certificate"
		if got := strings.Contains(string(log), want); got == c.served {
			t.Errorf("%s: error log has %q: %v, want %v", c.name, want, got, !c.served)
		}
	}
}

// TestRefreshOverHTTPS: a background refresh (an ngx.timer, which reads
// the http block's lua_ssl_* settings, not a handshake's) fetches over
// HTTPS with the server's certificate verified, as the first fetch does.
// The server is a test fixture answering ttl_seconds 1, so that the
// refresh comes within the test.
func TestRefreshOverHTTPS(t *testing.T) {
	a := craft(t, "refresh.test", []string{"refresh.test"}, []string{"refresh.test"})
	a.TTLSeconds = 1
	var fetches atomic.Int64
	fixture := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/certificates/refresh.test" {
			http.NotFound(w, r)
			return
		}
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	defer fixture.Close()
	dir := t.TempDir()
	// httptest's certificate is for example.com (and 127.0.0.1, which
	// nginx does not check): trusting it is trusting the fixture.
	trusted := filepath.Join(dir, "fixture.pem")
	if err := os.WriteFile(trusted, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fixture.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := fallbackFiles(t, dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	ngx := testsvc.Nginx(t, testsvc.NginxOptions{HTTP: fmt.Sprintf(`
  lua_ssl_trusted_certificate %s;
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ server = %q, tls_server_name = "example.com", shared_dict = "certkeeper" }) }
  server {
    listen %s ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
  }
`, trusted, fixture.URL, addr, certFile, keyFile), Ready: []string{addr}})

	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "refresh.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for refresh.test: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "refresh.test" || fetches.Load() != 1 {
		t.Fatalf("first handshake: served %q after %d fetches, want refresh.test after 1", cn, fetches.Load())
	}
	time.Sleep(1500 * time.Millisecond) // past ttl_seconds
	for deadline := time.Now().Add(5 * time.Second); fetches.Load() < 2; {
		if cn := served(); cn != "refresh.test" {
			t.Fatalf("stale handshake served %q, want refresh.test", cn)
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(ngx.ErrorLog())
			t.Fatalf("past its ttl, refresh.test was not fetched again over HTTPS:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFetchLogLevels: what is wrong with the configuration (a token the
// server refuses, an address that is not certkeeper's API) is logged at
// error, nginx's default error_log level, where the operator sees it; the
// server's answers about one name (refused by its policy, not ready yet)
// are warnings. Before, all were warnings, and the shipped configuration's
// error_log showed none of them (trial 12).
func TestFetchLogLevels(t *testing.T) {
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, "/v1/certificates/") {
		case "token.test":
			http.Error(w, "the bearer token was not accepted", http.StatusUnauthorized)
		case "moved.test":
			http.Redirect(w, r, "https://elsewhere.test/", http.StatusMovedPermanently)
		case "notfound.test":
			http.NotFound(w, r) // another service at that address
		case "denied.test":
			http.Error(w, "name denied by policy: denied.test", http.StatusForbidden)
		default:
			w.Header().Set("Retry-After", "10")
			http.Error(w, "no certificate for later.test yet: its issuance is still in progress; retry later", http.StatusServiceUnavailable)
		}
	}))
	defer fixture.Close()
	ngx, addr := pluginNginx(t, t.TempDir(), fixture.URL)
	handshakes(t, addr, "token.test", "moved.test", "notfound.test", "denied.test", "later.test")
	log, _ := os.ReadFile(ngx.ErrorLog())
	for _, want := range []string{
		`\[error\] .*certkeeper: fetching token\.test: server answered 401: the bearer token was not accepted \(init's token must be a line of the server's --token-file`,
		`\[error\] .*certkeeper: fetching moved\.test: server answered 301.*is init's server the address certkeeper server listens on`,
		`\[error\] .*certkeeper: fetching notfound\.test: server answered 404: 404 page not found .*is init's server the address certkeeper server listens on`,
		`\[warn\] .*certkeeper: fetching denied\.test: server answered 403: name denied by policy`,
		`\[warn\] .*certkeeper: fetching later\.test: server answered 503: no certificate for later\.test yet`,
	} {
		if !regexp.MustCompile(want).Match(log) {
			t.Errorf("error log lacks %s:\n%s", want, log)
		}
	}
}

// TestFetchMisconfiguredServer: init's server pointing at an HTTPS
// listener over http:// (a server given --api-cert after nginx was set up
// for plain HTTP), at a port where nothing listens, or at a DNS name
// without nginx's resolver, is logged at error
// with what to check. Before, Go's "400 Client sent an HTTP request to an HTTPS
// server" was taken for the server refusing the name: a warning, which the
// shipped error_log does not show, and 60 s of fallback (trial-nginx).
func TestFetchMisconfiguredServer(t *testing.T) {
	tlsServer := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsServer.Close()
	plain := "http://" + tlsServer.Listener.Addr().String()
	ngx, addr := pluginNginx(t, t.TempDir(), plain)
	handshakes(t, addr, "https.test")

	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	ngx2, addr2 := pluginNginx(t, t.TempDir(), "http://"+closed)
	handshakes(t, addr2, "refused.test")

	ngx3, addr3 := pluginNginx(t, t.TempDir(), "https://certkeeper.internal:8999") // no resolver
	handshakes(t, addr3, "resolver.test")

	for _, c := range []struct {
		ngx  *testsvc.NginxServer
		want string
	}{
		{ngx, `\[error\] .*certkeeper: fetching https\.test: server answered 400: Client sent an HTTP request to an HTTPS server.* \(the server's --listen speaks HTTPS, with --api-cert: give init an https:// server`},
		{ngx2, `\[error\] .*certkeeper: fetching refused\.test: connecting to http://` + regexp.QuoteMeta(closed) + `: connection refused \(is certkeeper server running, with --listen on this address\?`},
		{ngx3, `\[error\] .*certkeeper: fetching resolver\.test: connecting to https://certkeeper\.internal:8999: no resolver defined .*\(add resolver ADDR; to the http block`},
	} {
		log, _ := os.ReadFile(c.ngx.ErrorLog())
		if !regexp.MustCompile(c.want).Match(log) {
			t.Errorf("error log lacks %s:\n%s", c.want, log)
		}
	}
}

// TestReloadForgetsFailures: a name that failed under a wrong token is
// served at once after the token is fixed and nginx reloaded, not after
// error_ttl (10 s) more of fallback: the failures remembered in the
// shared dict belong to the configuration (init) that saw them, and a
// reload runs init again; the old workers, still draining, cannot write
// failures the new ones read (trial-nginx).
func TestReloadForgetsFailures(t *testing.T) {
	a := craft(t, "reload.test", []string{"reload.test"}, []string{"reload.test"})
	a.TTLSeconds = 3600
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-token-0123456789" {
			http.Error(w, "the bearer token was not accepted", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	defer fixture.Close()
	dir := t.TempDir()
	certFile, keyFile := fallbackFiles(t, dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	ngx := testsvc.Nginx(t, testsvc.NginxOptions{HTTP: fmt.Sprintf(`
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ server = %q, token = "wrong-token-0123456789", shared_dict = "certkeeper" }) }
  server {
    listen %s ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
  }
`, fixture.URL, addr, certFile, keyFile), Ready: []string{addr}})
	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "reload.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for reload.test: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "fallback.invalid" {
		t.Fatalf("with the wrong token nginx served %q, want the fallback", cn)
	}

	conf := filepath.Join(ngx.Dir(), "nginx.conf")
	b, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(strings.Replace(string(b), "wrong-token-", "good-token-", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	pid, err := os.ReadFile(filepath.Join(ngx.Dir(), "nginx.pid"))
	if err != nil {
		t.Fatal(err)
	}
	master, err := strconv.Atoi(strings.TrimSpace(string(pid)))
	if err != nil {
		t.Fatal(err)
	}
	proc, err := os.FindProcess(master)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGHUP); err != nil { // nginx -s reload
		t.Fatal(err)
	}
	// Well within error_ttl: before, the failure outlived the reload.
	for deadline := time.Now().Add(5 * time.Second); served() != "reload.test"; {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(ngx.ErrorLog())
			t.Fatalf("5 s after a reload with the right token, reload.test still gets the fallback:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// handshakes makes a TLS handshake with nginx at addr for each name.
func handshakes(t *testing.T, addr string, names ...string) {
	t.Helper()
	for _, name := range names {
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		conn.Close()
	}
}

// fallbackFiles writes, in dir, the certificate nginx serves when the
// plugin has none (ssl_certificate), for fallback.invalid, and its key.
func fallbackFiles(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	fb := craft(t, "fallback.invalid", []string{"fallback.invalid"}, nil)
	certFile, keyFile = filepath.Join(dir, "fallback.pem"), filepath.Join(dir, "fallback.key")
	if err := os.WriteFile(certFile, []byte(fb.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(fb.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// pluginNginx starts nginx with the plugin asking server, serving TLS on
// the address it returns, with fallback files (fallbackFiles) in dir.
func pluginNginx(t *testing.T, dir, server string) (*testsvc.NginxServer, string) {
	t.Helper()
	certFile, keyFile := fallbackFiles(t, dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	ngx := testsvc.Nginx(t, testsvc.NginxOptions{HTTP: fmt.Sprintf(`
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ server = %q, shared_dict = "certkeeper" }) }
  server {
    listen %s ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
  }
`, server, addr, certFile, keyFile), Ready: []string{addr}})
	return ngx, addr
}

// TestFallbackServers: with init's server down, the plugin asks its
// fallbacks in turn and serves the certificate one of them answers, then
// asks that one first; a refusal (403) is an answer, not asked again of
// the next server; a server that did not answer is logged at warn.
func TestFallbackServers(t *testing.T) {
	var asked [2]atomic.Int64
	fixture := func(i int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked[i].Add(1)
			name := strings.TrimPrefix(r.URL.Path, "/v1/certificates/")
			switch name {
			case "denied.test":
				http.Error(w, "name denied by policy: denied.test", http.StatusForbidden)
				return
			case "storage.test":
				w.Header().Set("Retry-After", "10")
				http.Error(w, "no certificate for storage.test yet: the certificate storage cannot be reached; retry later", http.StatusServiceUnavailable)
				return
			}
			json.NewEncoder(w).Encode(craft(t, name, []string{name}, []string{name}))
		}))
		t.Cleanup(s.Close)
		return s
	}
	first, second := fixture(0), fixture(1)
	down := "http://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	dir := t.TempDir()
	certFile, keyFile := fallbackFiles(t, dir)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	ngx := testsvc.Nginx(t, testsvc.NginxOptions{HTTP: fmt.Sprintf(`
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ server = %q, fallbacks = { %q, %q }, shared_dict = "certkeeper" }) }
  server {
    listen %s ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
  }
`, down, first.URL, second.URL, addr, certFile, keyFile), Ready: []string{addr}, Workers: 1})
	served := func(name string) string { return servedCN(t, addr, name) }
	if cn := served("a.test"); cn != "a.test" {
		t.Errorf("server down, fallbacks up: served %q, want a.test's certificate", cn)
	}
	if cn := served("b.test"); cn != "b.test" || asked[0].Load() != 2 || asked[1].Load() != 0 {
		t.Errorf("next name: served %q; fallbacks asked %d, %d times; want b.test from the first fallback only", cn, asked[0].Load(), asked[1].Load())
	}
	if cn := served("denied.test"); cn != "fallback.invalid" || asked[1].Load() != 0 {
		t.Errorf("a refused name: served %q, second fallback asked %d times; want nginx's fallback, not asked again", cn, asked[1].Load())
	}
	first.Close()
	if cn := served("c.test"); cn != "c.test" || asked[1].Load() != 1 {
		t.Errorf("first fallback down too: served %q, second asked %d times; want c.test from the second", cn, asked[1].Load())
	}
	// The one server up answers 503 (its storage down), the others
	// cannot be reached: the log says what the server that answered said,
	// not the last connection refused (fleet trial).
	if cn := served("storage.test"); cn != "fallback.invalid" {
		t.Errorf("storage.test, 503: served %q, want nginx's fallback", cn)
	}
	log, _ := os.ReadFile(ngx.ErrorLog())
	if !regexp.MustCompile(`\[warn\] .*certkeeper: certificate server did not answer; another one did: ` + regexp.QuoteMeta(down)).Match(log) {
		t.Errorf("error log lacks the warning naming %s:\n%s", down, log)
	}
	if !regexp.MustCompile(`certkeeper: fetching storage\.test: server answered 503: no certificate for storage\.test yet: the certificate storage cannot be reached`).Match(log) {
		t.Errorf("error log lacks the 503 the server up answered for storage.test:\n%s", log)
	}
}

// TestRefusedNameNoLongerServed: a certificate nginx holds for a name the
// server then refuses to this client (403: its token's names= changed)
// is no longer served once its ttl passes, not even stale, as the server
// may have revoked and replaced it meanwhile; before, it was served until
// it expired (fleet trial: a revoked certificate, for minutes, or 90 days
// from Let's Encrypt).
func TestRefusedNameNoLongerServed(t *testing.T) {
	a := craft(t, "moved.test", []string{"moved.test"}, []string{"moved.test"})
	a.TTLSeconds = 1
	var refused atomic.Bool
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refused.Load() {
			http.Error(w, "token 2 may not fetch moved.test: outside its names= in the token file", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	defer fixture.Close()
	ngx, addr := pluginNginx(t, t.TempDir(), fixture.URL)
	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "moved.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for moved.test: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "moved.test" {
		t.Fatalf("first handshake served %q", cn)
	}
	refused.Store(true)
	time.Sleep(1500 * time.Millisecond) // past ttl_seconds
	for deadline := time.Now().Add(5 * time.Second); served() == "moved.test"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(ngx.ErrorLog())
			t.Fatalf("moved.test still served 5 s after the server refused it (403):\n%s", b)
		}
	}
	log, _ := os.ReadFile(ngx.ErrorLog())
	if !regexp.MustCompile(`\[warn\] .*server answered 403: token 2 may not fetch moved\.test.*the certificate held for it is no longer served`).Match(log) {
		t.Errorf("error log lacks the refusal, saying the certificate is no longer served:\n%s", log)
	}
}

// TestRecordFieldsCannotShift: the record a worker keeps in the shared
// dict separates its fields with NUL bytes, so an answer with one in its
// OCSP staple shifted them, and later handshakes (another worker, or
// after a refresh) were served a certificate the plugin never checked
// (a security trial saw other.test's served for victim.test). A staple
// that is not base64 is dropped, and a NUL in the certificate or key
// refuses the answer. The server is a fixture answering crafted JSON.
func TestRecordFieldsCannotShift(t *testing.T) {
	victim := craft(t, "victim.test", []string{"victim.test"}, []string{"victim.test"})
	other := craft(t, "other.test", []string{"other.test"}, []string{"other.test"})
	nulKey := craft(t, "nul.test", []string{"nul.test"}, []string{"nul.test"})
	fixture := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a map[string]any
		switch strings.TrimPrefix(r.URL.Path, "/v1/certificates/") {
		case "victim.test":
			a = map[string]any{"names": victim.Names, "cert": victim.Cert, "key": victim.Key, "not_after": victim.NotAfter,
				"ttl_seconds": 1, "ocsp_staple": "AAAA\x00" + other.Cert + "\x00" + other.Key}
		case "nul.test":
			a = map[string]any{"names": nulKey.Names, "cert": nulKey.Cert, "key": nulKey.Key + "\x00", "not_after": nulKey.NotAfter, "ttl_seconds": 60}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	defer fixture.Close()
	ngx, addr := pluginNginx(t, t.TempDir(), fixture.URL)
	served := func(name string) string { return servedCN(t, addr, name) }
	for i := range 4 { // the first fetch, then reads of the dict and refreshes
		if cn := served("victim.test"); cn != "victim.test" {
			t.Errorf("handshake %d for victim.test served %s", i+1, cn)
		}
		time.Sleep(1200 * time.Millisecond)
	}
	if cn := served("nul.test"); cn != "fallback.invalid" {
		t.Errorf("an answer with a NUL in its key was served: %s", cn)
	}
	log, _ := os.ReadFile(ngx.ErrorLog())
	if !strings.Contains(string(log), "OCSP staple is not base64; not stapling it") || !strings.Contains(string(log), "a NUL byte in its certificate or key") {
		t.Errorf("the error log does not say why:\n%s", log)
	}
}

// TestAnswerBounded: a server's answer is read within one deadline (init's
// timeout) and its headers within 16 KiB: a server that sent a header line
// a second held a handshake 25 s with a 2 s timeout, and one that sent
// 90 MB of header lines grew a worker by 400 MB (a security trial). The
// servers here are fixtures speaking raw HTTP.
func TestAnswerBounded(t *testing.T) {
	serve := func(write func(c net.Conn)) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(20 * time.Second))
					_, _ = c.Read(make([]byte, 4096)) // the request
					write(c)
				}()
			}
		}()
		return ln.Addr().String()
	}
	flood := serve(func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n"))
		line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
		for range 10_000 { // 10 MB, unless the client stops reading
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	})
	drip := serve(func(c net.Conn) {
		_, _ = c.Write([]byte("HTTP/1.0 200 OK\r\n"))
		for i := range 40 {
			if _, err := fmt.Fprintf(c, "X-Drip-%d: x\r\n", i); err != nil {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
	for server, why := range map[string]string{flood: "headers are over 16384 bytes", drip: "timeout (init's timeout is 1000 ms"} {
		dir := t.TempDir()
		certFile, keyFile := fallbackFiles(t, dir)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
		ngx := testsvc.Nginx(t, testsvc.NginxOptions{HTTP: fmt.Sprintf(`
  lua_shared_dict certkeeper 1m;
  init_by_lua_block { require("certkeeper").init({ server = "http://%s", shared_dict = "certkeeper", timeout = 1000 }) }
  server {
    listen %s ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
  }
`, server, addr, certFile, keyFile), Ready: []string{addr}})
		start := time.Now()
		cn := servedCN(t, addr, "a.test")
		if took := time.Since(start); cn != "fallback.invalid" || took > 3*time.Second {
			t.Errorf("%s: served %s after %s; want the fallback within the timeout (1 s)", why, cn, took.Round(time.Millisecond))
		}
		if log, _ := os.ReadFile(ngx.ErrorLog()); !strings.Contains(string(log), why) {
			t.Errorf("the error log does not say %q:\n%s", why, log)
		}
	}
}

// servedCN is the common name of the certificate nginx at addr serves for
// name (within 10 s).
func servedCN(t *testing.T, addr, name string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}
