package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// The Lua plugin (lua/certkeeper.lua) end to end: real nginx with
// lua-nginx-module, the certkeeper server binary, Pebble, and openssl's
// OCSP responder.

const nginxToken = "nginx-test-token-3f9a"

// certServer is a running `certkeeper server`.
type certServer struct {
	addr     string
	auditLog string
	proc     *testsvc.Process
}

// startCertServer runs `certkeeper server` on a free port with a token
// file and an audit log, plus args, and waits for /healthz.
func startCertServer(t *testing.T, args ...string) *certServer {
	t.Helper()
	return startCertServerTLS(t, nil, args...)
}

// startCertServerTLS is startCertServer for a server whose args include
// --api-cert: /healthz is asked over HTTPS with tlsConfig (nil: plain
// HTTP).
func startCertServerTLS(t *testing.T, tlsConfig *tls.Config, args ...string) *certServer {
	t.Helper()
	scheme, client := "http", http.DefaultClient
	if tlsConfig != nil {
		scheme, client = "https", &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(nginxToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &certServer{auditLog: filepath.Join(dir, "audit.log")}
	err := testsvc.RetryPorts(func() error {
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
		all := append([]string{"server", "--listen", s.addr, "--token-file", tokens, "--audit-log", s.auditLog,
			"--log-level", "debug"}, args...)
		p, err := testsvc.StartProcess(t, exec.Command(binary, all...), nil)
		if err != nil {
			return err
		}
		s.proc = p
		return p.WaitReady(30*time.Second, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+s.addr+"/healthz", nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/healthz: %s", resp.Status)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("certkeeper server: %v", err)
	}
	return s
}

// handOuts counts the key hand-outs in the server's audit log. The server
// writes audit lines in the background, a moment after each hand-out, so
// the count is read until it holds still for 50 ms (at most 2 s).
func (s *certServer) handOuts(t *testing.T) int {
	t.Helper()
	count := func() int {
		b, err := os.ReadFile(s.auditLog)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte(`"msg":"key handed out"`))
	}
	n := count()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		m := count()
		if m == n {
			break
		}
		n = m
	}
	return n
}

// get asks the server's API for path with the token.
func (s *certServer) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+nginxToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// pluginNginx starts nginx with the plugin configured exactly as
// docs/nginx.md shows it for a server on loopback (server is its
// host:port, reached over plain http://), TLS on tlsPort and the http-01
// forward on httpPort (0: none). options are added to init's (after a
// comma), extra to the http block.
func pluginNginx(t *testing.T, server string, tlsPort, httpPort, workers int, options, extra string) *testsvc.NginxServer {
	t.Helper()
	certFile, keyFile := testsvc.SelfSignedFiles(t, t.TempDir(), "fallback.invalid")
	conf := fmt.Sprintf(`
  lua_shared_dict certkeeper 10m;
  init_by_lua_block { require("certkeeper").init({ server = %q, token = %q, shared_dict = "certkeeper"%s }) }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
    location / { return 200 "hello from nginx\n"; }
  }
`, "http://"+server, nginxToken, options, tlsPort, certFile, keyFile)
	ready := []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))}
	if httpPort != 0 {
		conf += fmt.Sprintf(`
  server {
    listen 127.0.0.1:%d;
    location /.well-known/acme-challenge/ { proxy_pass http://%s; }
  }
`, httpPort, server)
		ready = append(ready, net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort)))
	}
	return testsvc.Nginx(t, testsvc.NginxOptions{HTTP: conf + extra, Workers: workers, Ready: ready})
}

// httpsGets makes n requests to name through nginx at port, each on a new
// connection (a full handshake), and returns how many succeeded with a
// certificate that verifies against roots.
func httpsGets(t *testing.T, port int, name string, roots *x509.CertPool, n int) (ok int, lastErr error) {
	t.Helper()
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: name},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			},
		},
	}
	for range n {
		resp, err := client.Get("https://" + name + "/")
		if err != nil {
			lastErr = err
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), "hello from nginx") {
			ok++
		} else {
			lastErr = fmt.Errorf("%s: %q", resp.Status, body)
		}
	}
	return ok, lastErr
}

// TestNginxPlugin: through nginx and the plugin, curl gets a Pebble
// certificate for a name the server has never seen, obtained over http-01
// forwarded by nginx; the next 100 requests cost the server nothing; with
// the server killed, nginx keeps serving the name (100 of 100).
func TestNginxPlugin(t *testing.T) {
	httpPort, tlsPort := testsvc.FreePort(t), testsvc.FreePort(t)
	ca := testca.Start(t, testca.Options{HTTPPort: httpPort})
	roots := writeRoots(t, ca)
	srv := startCertServer(t, "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", t.TempDir(), "--allow", "b.test", "--allow", "c.test")
	pluginNginx(t, srv.addr, tlsPort, httpPort, 2, "", "")

	if orders := ca.Orders(); orders != 0 {
		t.Fatalf("Pebble has %d orders before the first request", orders)
	}
	body, _ := curl(t, roots, "b.test", tlsPort)
	if !strings.Contains(body, "hello from nginx") {
		t.Fatalf("curl https://b.test through nginx = %q", body)
	}
	if orders := ca.Orders(); orders != 1 {
		t.Errorf("Pebble has %d orders after the first request, want 1", orders)
	}
	pool := ca.IssuingRootPool(t)

	t.Run("cached", func(t *testing.T) {
		before := srv.handOuts(t)
		if before == 0 {
			t.Fatalf("the audit log shows no hand-out after the first request")
		}
		if ok, err := httpsGets(t, tlsPort, "b.test", pool, 100); ok != 100 {
			t.Fatalf("%d of 100 requests through nginx succeeded; last error: %v", ok, err)
		}
		if after := srv.handOuts(t); after != before {
			t.Errorf("100 cached requests made %d requests to the server, want 0", after-before)
		}
	})

	t.Run("one fetch per name and worker", func(t *testing.T) {
		before := srv.handOuts(t)
		var wg sync.WaitGroup
		var ok atomic.Int64
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if n, _ := httpsGets(t, tlsPort, "c.test", pool, 1); n == 1 {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 20 {
			t.Errorf("%d of 20 concurrent first requests for c.test succeeded", ok.Load())
		}
		if n := srv.handOuts(t) - before; n < 1 || n > 2 {
			t.Errorf("20 concurrent first requests on 2 workers made %d requests to the server, want 1 or 2", n)
		}
	})

	t.Run("server killed", func(t *testing.T) {
		srv.proc.Stop()
		if ok, err := httpsGets(t, tlsPort, "b.test", pool, 100); ok != 100 {
			t.Errorf("server killed: %d of 100 requests through nginx succeeded; last error: %v", ok, err)
		}
		// A name nginx never fetched gets the fallback, quickly.
		start := time.Now()
		conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)),
			&tls.Config{ServerName: "new.b.test", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for an unknown name with the server down: %v", err)
		}
		defer conn.Close()
		if cn := conn.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "fallback.invalid" {
			t.Errorf("unknown name with the server down served %q, want the fallback", cn)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("unknown name with the server down took %v", d)
		}
	})
}

// servedCN is the common name of the certificate nginx at port serves
// for name.
func servedCN(t *testing.T, port int, name string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		&tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestNginxPluginTTL: with 60-second certificates (ttl_seconds about 10),
// the plugin asks the server nothing within the ttl, refreshes in the
// background after it, and with the server killed serves the stale
// certificate past its ttl (stale-while-error); allow_domain keeps a name
// from ever reaching the server.
func TestNginxPluginTTL(t *testing.T) {
	httpPort, tlsPort := testsvc.FreePort(t), testsvc.FreePort(t)
	ca := testca.Start(t, testca.Options{HTTPPort: httpPort, Profiles: map[string]testca.Profile{
		"default": {Description: "60 s", ValidityPeriod: 60 * time.Second}}})
	srv := startCertServer(t, "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", t.TempDir(), "--allow", "a.ttl.test", "--allow", "denied.ttl.test")
	ngx := pluginNginx(t, srv.addr, tlsPort, httpPort, 1,
		`, lru_size = 100, allow_domain = function(name) return name ~= "denied.ttl.test" end`, "")
	pool := ca.IssuingRootPool(t)

	if ok, err := httpsGets(t, tlsPort, "a.ttl.test", pool, 1); ok != 1 {
		t.Fatalf("first request for a.ttl.test: %v", err)
	}
	fetched := time.Now()
	code, body := srv.get(t, "/v1/certificates/a.ttl.test")
	var answer struct {
		TTL int `json:"ttl_seconds"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &answer) != nil || answer.TTL < 3 || answer.TTL > 15 {
		t.Fatalf("GET a.ttl.test = %d, ttl_seconds %d; want 200 and about 10 s", code, answer.TTL)
	}
	ttl := time.Duration(answer.TTL) * time.Second
	base := srv.handOuts(t) // the plugin's fetch and the test's own

	t.Run("allow_domain", func(t *testing.T) {
		orders, handOuts := ca.Orders(), srv.handOuts(t)
		if cn := servedCN(t, tlsPort, "denied.ttl.test"); cn != "fallback.invalid" {
			t.Errorf("denied.ttl.test served %q, want the fallback", cn)
		}
		if ca.Orders() != orders || srv.handOuts(t) != handOuts {
			t.Errorf("a name allow_domain refuses reached the server")
		}
	})

	t.Run("within ttl", func(t *testing.T) {
		for time.Since(fetched) < ttl-2*time.Second {
			if ok, err := httpsGets(t, tlsPort, "a.ttl.test", pool, 10); ok != 10 {
				t.Fatalf("%d of 10 requests succeeded: %v", ok, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if n := srv.handOuts(t); n != base {
			t.Errorf("requests within the ttl made %d requests to the server, want 0", n-base)
		}
	})

	t.Run("refreshed after ttl", func(t *testing.T) {
		time.Sleep(time.Until(fetched.Add(ttl + time.Second)))
		// The plugin's ttl may be a second longer than the one the test
		// read: keep asking until the refresh shows.
		deadline := time.Now().Add(5 * time.Second)
		for srv.handOuts(t) == base {
			if ok, err := httpsGets(t, tlsPort, "a.ttl.test", pool, 1); ok != 1 {
				t.Fatalf("request past the ttl failed: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatal("past the ttl, the plugin did not fetch the certificate again")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := srv.handOuts(t); n != base+1 {
			t.Errorf("one stale name made %d fetches, want 1", n-base)
		}
	})

	t.Run("stale while error", func(t *testing.T) {
		refreshed := time.Now()
		srv.proc.Stop()
		time.Sleep(time.Until(refreshed.Add(ttl + time.Second)))
		if ok, err := httpsGets(t, tlsPort, "a.ttl.test", pool, 100); ok != 100 {
			t.Errorf("server down, ttl passed: %d of 100 requests succeeded; last error: %v", ok, err)
		}
		// They were served stale: the plugin tried to refresh and failed.
		waitLog := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(ngx.ErrorLog())
			if strings.Contains(string(b), "certkeeper: fetching a.ttl.test: connecting to") {
				break
			}
			if time.Now().After(waitLog) {
				t.Fatalf("no failed refresh of a.ttl.test in nginx's error log:\n%s", b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

}

// TestNginxOCSPStaple: a local-CA certificate naming an openssl OCSP
// responder reaches nginx through the server with its staple, and nginx
// staples it (openssl s_client -status: successful).
func TestNginxOCSPStaple(t *testing.T) {
	storageDir := t.TempDir()
	st := filestore.New(storageDir)
	ocspPort := testsvc.FreePort(t)
	lca := &localca.CA{Storage: st, OCSPURL: "http://127.0.0.1:" + strconv.Itoa(ocspPort), Logger: slog.New(slog.DiscardHandler)}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{lca}, Logger: slog.New(slog.DiscardHandler)}
	if err := m.Cert(t.Context(), "ocsp.test"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "ocsp.test"})
	if err != nil {
		t.Fatal(err)
	}
	interPEM, keyPEM, err := testsvc.LocalCAIssuer(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	responder := testsvc.OCSP(t, ocspPort, interPEM, keyPEM)
	responder.Add(t, c.Leaf)

	srv := startCertServer(t, "--ca", "local", "--storage", storageDir, "--managed", "ocsp.test")
	// The server staples in the background; nginx then gets the staple
	// with the certificate.
	var answer struct {
		OCSPStaple []byte `json:"ocsp_staple"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := srv.get(t, "/v1/certificates/ocsp.test")
		if code == http.StatusOK && json.Unmarshal(body, &answer) == nil && len(answer.OCSPStaple) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server's answer for ocsp.test never had a staple: %d %.300s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	tlsPort := testsvc.FreePort(t)
	pluginNginx(t, srv.addr, tlsPort, 0, 1, "", "")
	out := testsvc.SClientStatus(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), "ocsp.test")
	if !strings.Contains(out, "OCSP Response Status: successful") || !strings.Contains(out, "Cert Status: good") {
		t.Fatalf("openssl s_client -status through nginx:\n%s", out)
	}
	if !strings.Contains(out, "CN = ocsp.test") && !strings.Contains(out, "CN=ocsp.test") {
		t.Errorf("nginx did not serve the ocsp.test certificate:\n%s", out)
	}
}

// TestNginxHandshakeRatio is the plugin's throughput check, recorded in
// docs/performance.md: full TLS handshakes per second of nginx CPU with
// the plugin (the certificate served from the per-worker LRU) against
// nginx serving the same certificate as a static ssl_certificate, in the
// same nginx and the same run, alternating rounds. nginx's own processor
// time is what is compared (handshakes per CPU second): a rate over wall
// time on a shared machine measures the neighbours. The plugin must keep
// at least nginxBar of the static rate, in the median of 21 rounds
// (measureNginxRatio); a measurement below it is made once more before the test
// fails, and a failure also reports the floor of any Lua certificate
// hook measured the same way. Skipped with -short.
func TestNginxHandshakeRatio(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput check; run without -short")
	}
	if raceEnabled {
		t.Skip("throughput check: scripts/test.sh runs it in its own step, not beside the race-detector suite")
	}
	srv := startCertServer(t, "--ca", "local", "--storage", t.TempDir(), "--managed", "bench.test")
	// --managed obtains bench.test in the background after the start; the
	// policy (none) refuses it until then.
	code, body := srv.get(t, "/v1/certificates/bench.test")
	for deadline := time.Now().Add(10 * time.Second); code != http.StatusOK && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		code, body = srv.get(t, "/v1/certificates/bench.test")
	}
	if code != http.StatusOK {
		t.Fatalf("GET /v1/certificates/bench.test = %d %.200s", code, body)
	}
	var answer struct {
		Cert string `json:"cert"`
		Key  string `json:"key"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "bench.pem"), filepath.Join(dir, "bench.key")
	if err := os.WriteFile(certFile, []byte(answer.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(answer.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	pluginPort, staticPort, floorPort := testsvc.FreePort(t), testsvc.FreePort(t), testsvc.FreePort(t)
	// The floor is what any Lua certificate hook must do (read the name,
	// clear nginx's certificate, set a parsed chain and key): measured
	// only when the plugin fails the bar, to tell the plugin's own cost
	// from lua-nginx-module's and OpenSSL's.
	servers := fmt.Sprintf(`
  init_worker_by_lua_block {
    local ssl = require("ngx.ssl")
    local f = assert(io.open(%[2]q)); local cert = f:read("*a"); f:close()
    f = assert(io.open(%[3]q)); local key = f:read("*a"); f:close()
    FLOOR_CHAIN, FLOOR_KEY = assert(ssl.parse_pem_cert(cert)), assert(ssl.parse_pem_priv_key(key))
  }
  server {
    listen 127.0.0.1:%[1]d ssl;
    ssl_certificate %[2]s; ssl_certificate_key %[3]s;
    location / { return 200 "hello from nginx\n"; }
  }
  server {
    listen 127.0.0.1:%[4]d ssl;
    ssl_certificate %[2]s; ssl_certificate_key %[3]s;
    ssl_certificate_by_lua_block {
      local ssl = require("ngx.ssl")
      local name = ssl.server_name()
      ssl.clear_certs(); ssl.set_cert(FLOOR_CHAIN); ssl.set_priv_key(FLOOR_KEY)
    }
    location / { return 200 "hello from nginx\n"; }
  }
`, staticPort, certFile, keyFile, floorPort)
	n := pluginNginx(t, srv.addr, pluginPort, 0, 1, "", servers)
	if _, err := n.CPUTime(); err != nil {
		t.Skipf("no per-process CPU times here: %v", err)
	}
	pluginAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pluginPort))
	staticAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(staticPort))
	floorAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(floorPort))
	// Warm up: the plugin fetches and caches bench.test, and LuaJIT
	// compiles the hooks (a function is traced after about a hundred
	// calls; interpreted, the plugin costs about twice as much).
	for _, addr := range []string{pluginAddr, staticAddr, floorAddr} {
		if err := handshakes(addr, "bench.test", conns, 300); err != nil {
			t.Fatal(err)
		}
	}
	// A neighbour on a shared machine can slow one side of a few rounds,
	// or every round for a second or two: a failing measurement is made
	// once more, after a pause, and the test fails when both do. A
	// plugin below the bar fails both.
	var m nginxRatio
	for attempt := 1; attempt <= 2; attempt++ {
		m = measureNginxRatio(t, n, staticAddr, "plugin", pluginAddr)
		t.Logf("attempt %d: %s", attempt, m)
		if m.median() >= nginxBar {
			return
		}
		time.Sleep(2 * time.Second)
	}
	floor := measureNginxRatio(t, n, staticAddr, "floor", floorAddr)
	t.Logf("the floor of a Lua certificate hook, in place of the plugin: %s", floor)
	t.Errorf("nginx with the plugin: %.3f of the static certificate's handshakes per CPU second in each of two measurements, want >= %.1f "+
		"(the last one's rounds: %.3f; the floor of any Lua hook, measured after: %.3f)", m.median(), nginxBar, m.ratios, floor.median())
}

// The shape of TestNginxHandshakeRatio's measurement: rounds rounds, in
// each of which conns clients make each handshakes in all with each
// server, in blocks of block handshakes ordered static, hook, hook,
// static (so that a machine getting slower or faster during a round
// weighs on both sides alike).
const conns, each, block, rounds = 4, 200, 25, 21

// nginxBar is the least median ratio TestNginxHandshakeRatio accepts
// (issue 5: the plugin keeps 0.9 of a static certificate's rate).
const nginxBar = 0.9

// nginxRatio is one measurement of TestNginxHandshakeRatio: each
// round's ratio (static CPU time / the hook's CPU time for the same
// number of handshakes, which is the hook's rate over the static one),
// sorted, and the totals.
type nginxRatio struct {
	hook                                     string // "plugin", or "floor"
	ratios                                   []float64
	cpuStatic, cpuHook, wallStatic, wallHook time.Duration
}

func (m nginxRatio) median() float64 { return m.ratios[len(m.ratios)/2] }

func (m nginxRatio) String() string {
	r, n := m.ratios, len(m.ratios)
	total := float64(n * each)
	return fmt.Sprintf("nginx handshakes per CPU second: static ssl_certificate %.0f, %s %.0f; median ratio %.3f "+
		"(min %.3f, q1 %.3f, q3 %.3f, max %.3f; %d rounds of %d handshakes each; %.3f overall; wall-clock rates %.0f and %.0f /s)",
		total/m.cpuStatic.Seconds(), m.hook, total/m.cpuHook.Seconds(), m.median(), r[0], r[n/4], r[3*n/4], r[n-1], n, each,
		m.cpuStatic.Seconds()/m.cpuHook.Seconds(), total/m.wallStatic.Seconds(), total/m.wallHook.Seconds())
}

// measureNginxRatio runs the rounds against n's static server and a
// hook's; the median of the rounds' ratios is robust against a round
// disturbed by the machine.
func measureNginxRatio(t *testing.T, n *testsvc.NginxServer, staticAddr, hook, hookAddr string) nginxRatio {
	t.Helper()
	m := nginxRatio{hook: hook}
	measure := func(addr string, cpu, wall *time.Duration) time.Duration {
		c0, _ := n.CPUTime()
		start := time.Now()
		if err := handshakes(addr, "bench.test", conns, block); err != nil {
			t.Fatal(err)
		}
		*wall += time.Since(start)
		c1, _ := n.CPUTime()
		*cpu += c1 - c0
		return c1 - c0
	}
	for range rounds {
		var h, f time.Duration
		for range each / (2 * block) {
			f += measure(staticAddr, &m.cpuStatic, &m.wallStatic)
			h += measure(hookAddr, &m.cpuHook, &m.wallHook)
			h += measure(hookAddr, &m.cpuHook, &m.wallHook)
			f += measure(staticAddr, &m.cpuStatic, &m.wallStatic)
		}
		m.ratios = append(m.ratios, f.Seconds()/h.Seconds())
	}
	slices.Sort(m.ratios)
	return m
}

// handshakes makes n full TLS handshakes with addr for name (no session
// resumption), from conns clients at once.
func handshakes(addr, name string, conns, n int) error {
	var next atomic.Int64
	errs := make(chan error, conns)
	for range conns {
		go func() {
			cfg := &tls.Config{ServerName: name, InsecureSkipVerify: true}
			for next.Add(1) <= int64(n) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
				if err != nil {
					errs <- fmt.Errorf("handshake with %s for %s: %w", addr, name, err)
					return
				}
				c.Close()
			}
			errs <- nil
		}()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// TestNginxTLSALPN: nginx.md's stream block, as written (addresses pointed
// at the test), routes the CA's tls-alpn-01 handshakes on nginx's TLS port
// to the server's --tls-alpn-addr and every other connection to the
// plugin: a name the server has never seen is validated by Pebble through
// nginx, with no http-01 port anywhere, and served.
func TestNginxTLSALPN(t *testing.T) {
	doc, err := os.ReadFile("../docs/nginx.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "\nstream {\n")
	if ok {
		block, _, ok = strings.Cut(block, "\n}\n")
	}
	if !ok {
		t.Fatal("docs/nginx.md has no nginx block with a stream { ... } at the start of a line")
	}
	tlsPort, httpsPort, alpnPort := testsvc.FreePort(t), testsvc.FreePort(t), testsvc.FreePort(t)
	ca := testca.Start(t, testca.Options{TLSPort: tlsPort})
	roots := writeRoots(t, ca)
	alpnAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(alpnPort))
	srv := startCertServer(t, "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "default",
		"--storage", t.TempDir(), "--allow", "alpn.test", "--challenge", "tls-alpn-01", "--tls-alpn-addr", alpnAddr)
	stream := strings.NewReplacer(
		"10.0.0.10:8998", alpnAddr,
		"127.0.0.1:8443", net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort)),
		"listen 443;", fmt.Sprintf("listen 127.0.0.1:%d;", tlsPort),
		"listen [::]:443;", "",
	).Replace(block)
	certFile, keyFile := testsvc.SelfSignedFiles(t, t.TempDir(), "fallback.invalid")
	ngx := testsvc.Nginx(t, testsvc.NginxOptions{Stream: stream, HTTP: fmt.Sprintf(`
  lua_shared_dict certkeeper 10m;
  init_by_lua_block { require("certkeeper").init({ server = %q, token = %q, shared_dict = "certkeeper" }) }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
    location / { return 200 "hello from nginx\n"; }
  }
`, "http://"+srv.addr, nginxToken, httpsPort, certFile, keyFile),
		Ready: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)), net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort))}})

	body, _ := curl(t, roots, "alpn.test", tlsPort)
	if !strings.Contains(body, "hello from nginx") {
		b, _ := os.ReadFile(ngx.ErrorLog())
		t.Fatalf("curl https://alpn.test through nginx's stream proxy = %q\nerror.log:\n%s", body, b)
	}
	if orders := ca.Orders(); orders != 1 {
		t.Errorf("Pebble has %d orders, want 1", orders)
	}
}
