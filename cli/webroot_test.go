//go:build unix

package cli

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestIssueWebroot: a real nginx owns the port Pebble validates http-01 on
// and serves a document root; cert issue --webroot obtains a certificate
// through it without listening anywhere, leaves the root as it found it,
// and cert renew --force renews the same way from the remembered settings.
func TestIssueWebroot(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort()))
	root := filepath.Join(t.TempDir(), "www")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(root), filepath.Dir(filepath.Dir(root))} { // nginx's workers, nobody, read it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("site\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testsvc.Nginx(t, testsvc.NginxOptions{
		HTTP:  fmt.Sprintf("  server {\n    listen %s;\n    root %s;\n  }\n", httpAddr, root),
		Ready: []string{httpAddr},
		User:  "nobody nogroup", // as www-data serves a packaged nginx's root: the tokens must be readable by all
	})

	out := t.TempDir()
	args := pebbleArgs(ca, t.TempDir(), out)
	for i, a := range args {
		if a == "--http-addr" { // nginx holds it: nothing else may listen there
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	r := ck(t, time.Minute, append(args, "--webroot", root, "-d", "a.test", "-d", "www.a.test")...)
	if r.code != 0 {
		t.Fatalf("cert issue --webroot: exit %d\n%s", r.code, r.stderr)
	}
	first := readPair(t, out, "a.test")
	verifyChain(t, first, ca.IssuingRootPool(t), "a.test", "www.a.test")
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Errorf("after issuing, the document root holds %v, want only index.html", entries)
	}
	access, err := os.ReadFile(filepath.Join(n.Dir(), "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(access), "GET /.well-known/acme-challenge/"); c < 2 {
		t.Errorf("nginx served %d challenge requests, want one per name (2):\n%s", c, access)
	}
	conf, err := os.ReadFile(filepath.Join(out, "renewal", "a.test.conf"))
	if err != nil || !strings.Contains(string(conf), "webroot = "+root+"\n") {
		t.Errorf("renewal settings do not remember the webroot (%v):\n%s", err, conf)
	}

	args[1] = "renew"
	if r := ck(t, time.Minute, append(args, "--force")...); r.code != 0 {
		t.Fatalf("cert renew --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	renewed := readPair(t, out, "a.test")
	if renewed[0].SerialNumber.Cmp(first[0].SerialNumber) == 0 {
		t.Error("cert renew --force wrote no new certificate")
	}
	if access, _ = os.ReadFile(filepath.Join(n.Dir(), "access.log")); strings.Count(string(access), "GET /.well-known/acme-challenge/") < 4 {
		t.Errorf("the renewal was not validated through nginx:\n%s", access)
	}
}

// TestWebrootRefused: --webroot mistakes are refused before any CA is
// asked (the CA URL here answers nothing), each saying what to type;
// certbot's "--webroot -w DIR" is taken, so it gets as far as the CA.
func TestWebrootRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"a flag as the value", []string{"--webroot", "-d", dir}, `invalid value "-d" for --webroot: give the web server's directory: --webroot DIR`},
		{"missing", []string{"--webroot", filepath.Join(dir, "missing")}, "no such file or directory: give the directory your web server serves on port 80"},
		{"a file", []string{"--webroot", file}, "not a directory"},
		{"other challenge", []string{"--webroot", dir, "--challenge", "tls-alpn-01"}, "--webroot answers http-01, not --challenge tls-alpn-01"},
		{"http-addr", []string{"--webroot", dir, "--http-addr", "127.0.0.1:8080"}, "nothing listens on --http-addr 127.0.0.1:8080"},
		{"certbot's spelling", []string{"--webroot", "-w", dir}, "cannot reach the ACME CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"cert", "issue", "--ca", "https://127.0.0.1:1/directory", "--storage", t.TempDir(),
				"--out-dir", t.TempDir(), "-d", "a.test"}, tc.extra...)
			r := ck(t, 30*time.Second, args...)
			code := 2
			if tc.name == "certbot's spelling" {
				code = 1
			}
			if r.code != code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, code, tc.want)
			}
		})
	}
}
