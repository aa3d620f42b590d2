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
	if err := os.Chmod(filepath.Dir(root), 0o755); err != nil { // nginx's workers read it
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte("site\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := testsvc.Nginx(t, testsvc.NginxOptions{
		HTTP:  fmt.Sprintf("  server {\n    listen %s;\n    root %s;\n  }\n", httpAddr, root),
		Ready: []string{httpAddr},
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
