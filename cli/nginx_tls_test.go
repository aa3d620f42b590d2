package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// The Lua plugin talking to `certkeeper server --api-cert` over HTTPS:
// nginx verifies the server's certificate (lua_ssl_trusted_certificate)
// and its name, and may authenticate with a client certificate
// (--client-ca).

// writeCACert writes a self-signed CA certificate named cn and its key as
// PEM files in dir.
func writeCACert(t *testing.T, dir, cn string) (certFile string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	t.Helper()
	return writeSignedCert(t, dir, cn, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil, nil)
}

// writeServerCert writes a TLS server certificate for dnsNames signed by
// ca, and its key, as PEM files in dir; it returns their paths.
func writeServerCert(t *testing.T, dir string, dnsNames []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certFile, keyFile string) {
	t.Helper()
	certFile, _, _ = writeSignedCert(t, dir, dnsNames[0], &x509.Certificate{Subject: pkix.Name{CommonName: dnsNames[0]},
		DNSNames: dnsNames, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, caKey)
	return certFile, strings.TrimSuffix(certFile, ".pem") + ".key"
}

// writeSignedCert completes tmpl (serial, validity), signs it with parent
// (self-signed when nil) and writes it and a new key to dir as NAME.pem
// and NAME.key.
func writeSignedCert(t *testing.T, dir, name string, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (string, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, cert, key
}

// httpsPluginNginx starts nginx with the plugin configured for an
// https:// server as docs/nginx.md shows it: lua_ssl_trusted_certificate
// trusted, init's options options (server, token or client certificate,
// tls_server_name), TLS on tlsPort.
func httpsPluginNginx(t *testing.T, trusted, options string, tlsPort int) *testsvc.NginxServer {
	t.Helper()
	certFile, keyFile := testsvc.SelfSignedFiles(t, t.TempDir(), "fallback.invalid")
	conf := fmt.Sprintf(`
  lua_ssl_trusted_certificate %s;
  lua_ssl_verify_depth 2;
  lua_shared_dict certkeeper 10m;
  init_by_lua_block { require("certkeeper").init({ shared_dict = "certkeeper", %s }) }
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_certificate_by_lua_block { require("certkeeper").ssl_certificate() }
    location / { return 200 "hello from nginx\n"; }
  }
`, trusted, options, tlsPort, certFile, keyFile)
	return testsvc.Nginx(t, testsvc.NginxOptions{HTTP: conf, Ready: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))}})
}

// waitLog waits (5 s at most) until nginx's error log holds every one of
// want.
func waitLog(t *testing.T, ngx *testsvc.NginxServer, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(ngx.ErrorLog())
		missing := ""
		for _, w := range want {
			if !strings.Contains(string(b), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx's error log lacks %q:\n%s", missing, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNginxPluginHTTPS: the plugin fetches from `certkeeper server
// --api-cert` over HTTPS, verifying the server's certificate against
// lua_ssl_trusted_certificate and its name, and nginx serves what it
// fetched; a server certificate from another CA, or for another name,
// makes the fetch fail before any request is sent (nginx logs why, and
// serves the fallback); a client certificate from --client-ca
// authenticates without a token.
func TestNginxPluginHTTPS(t *testing.T) {
	dir := t.TempDir()
	apiCA, apiCACert, apiCAKey := writeCACert(t, dir, "api-ca")
	otherCA, _, _ := writeCACert(t, dir, "other-ca")
	apiCert, apiKey := writeServerCert(t, dir, []string{"certkeeper.test"}, apiCACert, apiCAKey)
	clientCA, _, clientCACert, clientCAKey := writeTestCert(t, dir, "fleet-ca", nil, nil)
	clientCert, clientKey, _, _ := writeTestCert(t, dir, "web1", clientCACert, clientCAKey)
	roots := x509.NewCertPool()
	roots.AddCert(apiCACert)
	srv := startCertServerTLS(t, &tls.Config{RootCAs: roots, ServerName: "certkeeper.test"},
		"--api-cert", apiCert+":"+apiKey, "--client-ca", clientCA, "--ca", "local", "--storage", t.TempDir(),
		"--allow", "a.https.test", "--allow", "b.https.test", "--allow", "c.https.test", "--allow", "d.https.test",
		"--allow", "e.https.test")
	url := "https://" + srv.addr
	token := fmt.Sprintf("token = %q", nginxToken)

	t.Run("https", func(t *testing.T) {
		port := testsvc.FreePort(t)
		httpsPluginNginx(t, apiCA, fmt.Sprintf(`server = %q, tls_server_name = "certkeeper.test", %s`, url, token), port)
		if cn := servedCN(t, port, "a.https.test"); cn != "a.https.test" {
			t.Fatalf("nginx served %q for a.https.test, want the certificate from the server", cn)
		}
		waitAudit(t, srv.auditLog, `"name":"a.https.test","who":"token 1"`)
	})

	t.Run("server certificate from another CA", func(t *testing.T) {
		port := testsvc.FreePort(t)
		ngx := httpsPluginNginx(t, otherCA, fmt.Sprintf(`server = %q, tls_server_name = "certkeeper.test", %s`, url, token), port)
		if cn := servedCN(t, port, "b.https.test"); cn != "fallback.invalid" {
			t.Errorf("nginx trusting another CA served %q for b.https.test, want the fallback", cn)
		}
		waitLog(t, ngx, "lua ssl certificate verify error",
			"certkeeper: fetching b.https.test: TLS handshake with "+url+" (certkeeper.test)")
		if b, _ := os.ReadFile(srv.auditLog); strings.Contains(string(b), "b.https.test") {
			t.Errorf("the server handed out b.https.test to a client that does not trust it:\n%s", b)
		}
	})

	t.Run("server certificate for another name", func(t *testing.T) {
		port := testsvc.FreePort(t)
		ngx := httpsPluginNginx(t, apiCA, fmt.Sprintf(`server = %q, tls_server_name = "impostor.test", %s`, url, token), port)
		if cn := servedCN(t, port, "c.https.test"); cn != "fallback.invalid" {
			t.Errorf("nginx expecting impostor.test served %q for c.https.test, want the fallback", cn)
		}
		waitLog(t, ngx, `lua ssl certificate does not match host "impostor.test"`,
			"certkeeper: fetching c.https.test: TLS handshake with "+url+" (impostor.test)")
	})

	t.Run("client certificate", func(t *testing.T) {
		port := testsvc.FreePort(t)
		httpsPluginNginx(t, apiCA, fmt.Sprintf(`server = %q, tls_server_name = "certkeeper.test", client_cert = %q, client_key = %q`,
			url, clientCert, clientKey), port)
		if cn := servedCN(t, port, "d.https.test"); cn != "d.https.test" {
			t.Fatalf("nginx with a client certificate served %q for d.https.test, want the certificate from the server", cn)
		}
		waitAudit(t, srv.auditLog, `"name":"d.https.test","who":"cert CN=web1 serial `)
	})

	t.Run("neither token nor client certificate", func(t *testing.T) {
		port := testsvc.FreePort(t)
		ngx := httpsPluginNginx(t, apiCA, fmt.Sprintf(`server = %q, tls_server_name = "certkeeper.test"`, url), port)
		if cn := servedCN(t, port, "e.https.test"); cn != "fallback.invalid" {
			t.Errorf("nginx without credentials served %q for e.https.test, want the fallback", cn)
		}
		// The server's reason comes along (the first line of its answer).
		waitLog(t, ngx, "certkeeper: fetching e.https.test: server answered 401: a bearer token")
	})
}

// TestNginxDeployExample: deploy/nginx/nginx.conf is the configuration
// docs/nginx.md shows, passes `nginx -t`, and, started for real with its
// addresses and files pointed at this test (nginx -t does not run
// init_by_lua), fetches a certificate from `certkeeper server --api-cert`
// over HTTPS and serves it, and forwards http-01 requests to the server.
func TestNginxDeployExample(t *testing.T) {
	bin := testsvc.LookPath(t, "nginx", "install nginx libnginx-mod-http-lua lua-resty-core lua-resty-lrucache")
	for _, f := range []string{"/etc/nginx/mime.types", "/etc/nginx/modules-enabled"} {
		if _, err := os.Stat(f); err != nil {
			testsvc.Unavailable(t, "Debian's nginx configuration", "install nginx libnginx-mod-http-lua", err)
		}
	}
	conf, err := os.ReadFile("../deploy/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/nginx.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```nginx\n"+string(conf)+"```\n") {
		t.Errorf("docs/nginx.md does not show deploy/nginx/nginx.conf as it is (in an nginx code block)")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The plugin as docs/nginx.md installs it: from the binary.
	lua := filepath.Join(dir, "lua")
	if r := ck(t, 30*time.Second, "nginx-plugin", "--out-dir", lua); r.code != 0 || !strings.Contains(r.stdout, `lua_package_path "`+lua+`/?.lua;;"`) {
		t.Fatalf("nginx-plugin --out-dir: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, want := mustRead(t, filepath.Join(lua, "certkeeper.lua")), mustRead(t, "../lua/certkeeper.lua"); !bytes.Equal(got, want) {
		t.Error("nginx-plugin --out-dir wrote another certkeeper.lua than lua/certkeeper.lua")
	}
	if r := ck(t, 30*time.Second, "nginx-plugin"); r.stdout != string(mustRead(t, "../lua/certkeeper.lua")) {
		t.Errorf("nginx-plugin printed %d bytes, not lua/certkeeper.lua", len(r.stdout))
	}
	apiCA, apiCACert, apiCAKey := writeCACert(t, dir, "api-ca")
	apiCert, apiKey := writeServerCert(t, dir, []string{"certkeeper.internal"}, apiCACert, apiCAKey)
	roots := x509.NewCertPool()
	roots.AddCert(apiCACert)
	srv := startCertServerTLS(t, &tls.Config{RootCAs: roots, ServerName: "certkeeper.internal"},
		"--api-cert", apiCert+":"+apiKey, "--ca", "local", "--storage", t.TempDir(), "--allow", "deploy.test")
	certFile, keyFile := testsvc.SelfSignedFiles(t, dir, "fallback.invalid")
	tlsPort, httpPort := testsvc.FreePort(t), testsvc.FreePort(t)
	var temps strings.Builder
	for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "    %s_temp_path %s;\n", tmp, filepath.Join(dir, tmp+"_temp"))
	}
	// As root, the workers run unprivileged, as the shipped file's www-data
	// do (nobody here): the example must not need workers that read root's
	// files. They reach dir through its parent.
	user := ""
	if os.Geteuid() == 0 {
		user = "user nobody nogroup;"
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := strings.NewReplacer(
		"/usr/local/share/certkeeper/lua", lua,
		"/etc/nginx/fallback.pem", certFile,
		"/etc/nginx/fallback.key", keyFile,
		"/etc/nginx/certkeeper-ca.pem", apiCA,
		"/var/log/nginx", dir,
		"/run/nginx.pid", filepath.Join(dir, "nginx.pid"),
		"https://10.0.0.10:8999", "https://"+srv.addr,
		`"TOKEN"`, strconv.Quote(nginxToken),
		"user www-data;", user,
		"worker_processes auto;", "worker_processes 1;",
		"listen 443 ssl http2;", fmt.Sprintf("listen 127.0.0.1:%d ssl http2;", tlsPort),
		"listen [::]:443 ssl http2;", "",
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", httpPort),
		"listen [::]:80;", "",
		"http {\n", "http {\n"+temps.String(),
	).Replace(string(conf))
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-t", "-c", file, "-e", filepath.Join(dir, "error.log")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t on deploy/nginx/nginx.conf: %v\n%s", err, out)
	}

	p, err := testsvc.StartProcess(t, exec.Command(bin, "-c", file, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	err = p.WaitReady(20*time.Second, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort)))
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Fatalf("nginx with deploy/nginx/nginx.conf: %v\n%s", err, p.Output())
	}
	if cn := servedCN(t, tlsPort, "deploy.test"); cn != "deploy.test" {
		t.Errorf("nginx with deploy/nginx/nginx.conf served %q for deploy.test, want the certificate from the server", cn)
	}
	waitAudit(t, srv.auditLog, `"name":"deploy.test","who":"token 1"`)
	// The http-01 forward reaches the server over HTTPS: its answer for an
	// unknown token, not nginx's 502.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/unknown-token", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") == "text/html" {
		t.Errorf("http-01 forward: %s (%s), want the server's 404", resp.Status, resp.Header.Get("Content-Type"))
	}
}
