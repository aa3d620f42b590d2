package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestCATrust runs `certkeeper ca trust` and `ca untrust` on Debian inside a
// private mount namespace, with temporary directories bound over
// /etc/ssl/certs and /usr/local/share/ca-certificates, so the host's trust
// store is never touched: curl without --cacert fails before, succeeds after
// trust, and fails again after untrust. The namespace's store is small:
// /etc/ca-certificates.conf lists one of the distribution's roots, and the
// hooks in /etc/ca-certificates/update.d (Java's keystore) are hidden behind
// an empty directory. update-ca-certificates is a shell script that forks
// a few processes per root: over the full Mozilla list it took 44 s of this
// test's time per run on a loaded machine, and 3 s over one root.
func TestCATrust(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the system trust store is tested on Debian only")
	}
	for _, tool := range []string{"unshare", "mount", "update-ca-certificates", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			testsvc.Unavailable(t, tool, "apt-get install util-linux mount ca-certificates curl", err)
		}
	}
	if os.Geteuid() != 0 {
		testsvc.Unavailable(t, "root", "run the test as root: it binds directories in a private mount namespace", nil)
	}
	hostBundle := sha256File(t, "/etc/ssl/certs/ca-certificates.crt")

	dir := t.TempDir()
	storageDir, out := filepath.Join(dir, "storage"), filepath.Join(dir, "out")
	if r := ck(t, time.Minute, "cert", "issue", "--ca", "local", "-d", "localhost", "--storage", storageDir, "--out-dir", out); r.code != 0 {
		t.Fatalf("cert issue: %d\n%s", r.code, r.stderr)
	}
	addr := serveTLSFiles(t, filepath.Join(out, "certs", "localhost.pem"), filepath.Join(out, "private", "localhost.key"))
	url := "https://localhost:" + cmdline.PortOf(addr) + "/"

	certs, anchors, hooks := filepath.Join(dir, "etc-ssl-certs"), filepath.Join(dir, "local-anchors"), filepath.Join(dir, "no-hooks")
	conf := filepath.Join(dir, "ca-certificates.conf")
	if err := os.WriteFile(conf, []byte(oneSystemRoot(t)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{certs, anchors, hooks} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf(`
cp /etc/ssl/certs/ca-certificates.crt %[1]s/ || exit 10
mount --bind %[1]s /etc/ssl/certs || exit 11
mount --bind %[2]s /usr/local/share/ca-certificates || exit 12
if [ -d /etc/ca-certificates/update.d ]; then mount --bind %[6]s /etc/ca-certificates/update.d || exit 15; fi
mount --bind %[7]s /etc/ca-certificates.conf || exit 16
curl -sS --max-time 10 -o /dev/null %[3]s; echo "before=$?"
%[4]s ca trust --no-nss --storage %[5]s || exit 13
curl -sS --max-time 10 -o /dev/null %[3]s; echo "trusted=$?"
ls /usr/local/share/ca-certificates
%[4]s ca untrust --no-nss --storage %[5]s || exit 14
curl -sS --max-time 10 -o /dev/null %[3]s; echo "untrusted=$?"
`, certs, anchors, url, binary, storageDir, hooks, conf)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	got, err := cmd.CombinedOutput()
	t.Logf("in the namespace:\n%s", got)
	if err != nil {
		t.Fatalf("the script in the private mount namespace failed: %v", err)
	}
	for _, want := range []string{"before=60", "trusted=0", "untrusted=60", "certkeeper-"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("want %q in the output (curl exits 60 when it cannot verify the certificate)", want)
		}
	}
	if !strings.Contains(string(got), "trusted in the system store (/usr/local/share/ca-certificates/certkeeper-") {
		t.Errorf("ca trust did not say where it installed the root")
	}
	if sha256File(t, "/etc/ssl/certs/ca-certificates.crt") != hostBundle {
		t.Errorf("the host's /etc/ssl/certs/ca-certificates.crt changed")
	}
	if m, _ := filepath.Glob("/usr/local/share/ca-certificates/certkeeper-*"); len(m) > 0 {
		t.Errorf("the host's anchor directory holds %v", m)
	}
}

// oneSystemRoot returns the first root /etc/ca-certificates.conf enables.
func oneSystemRoot(t *testing.T) string {
	data, err := os.ReadFile("/etc/ca-certificates.conf")
	if err != nil {
		testsvc.Unavailable(t, "/etc/ca-certificates.conf", "apt-get install ca-certificates", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && line[0] != '#' && line[0] != '!' {
			return line
		}
	}
	t.Fatal("/etc/ca-certificates.conf enables no root")
	return ""
}

// TestCATrustNSS adds the local CA's root to an NSS database (the kind
// Chromium and Firefox read) in a temporary home and removes it again, with
// NSS's own certutil as the judge.
func TestCATrustNSS(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("NSS databases are not used on Windows")
	}
	if _, err := exec.LookPath("certutil"); err != nil {
		testsvc.Unavailable(t, "certutil", "apt-get install libnss3-tools", err)
	}
	home := t.TempDir()
	db := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("certutil", "-N", "-d", db, "--empty-password"); err != nil {
		t.Fatalf("creating the NSS database: %v\n%s", err, out)
	}
	// An existing storage without a CA: ca trust creates one there (a
	// --storage directory that does not exist is refused as a typo).
	storageDir := t.TempDir()
	out, err := run(binary, "ca", "trust", "--no-system", "--storage", storageDir)
	if err != nil {
		t.Fatalf("ca trust: %v\n%s", err, out)
	}
	if !strings.Contains(out, "in the nss store ("+db+")") {
		t.Errorf("ca trust did not name the NSS database:\n%s", out)
	}
	list, err := run("certutil", "-L", "-d", db)
	if err != nil || !strings.Contains(list, "certkeeper local CA") || !strings.Contains(list, "C,,") {
		t.Fatalf("the root is not in the NSS database as a trusted CA (%v):\n%s", err, list)
	}
	if out, err := run(binary, "ca", "untrust", "--no-system", "--storage", storageDir); err != nil {
		t.Fatalf("ca untrust: %v\n%s", err, out)
	}
	if list, _ := run("certutil", "-L", "-d", db); strings.Contains(list, "certkeeper local CA") {
		t.Errorf("the root is still in the NSS database after untrust:\n%s", list)
	}
	// Untrusting again is no error.
	if out, err := run(binary, "ca", "untrust", "--no-system", "--storage", storageDir); err != nil {
		t.Errorf("a second ca untrust: %v\n%s", err, out)
	}
	// A client machine trusts the root file ca root printed on the CA's
	// host, and needs none of its keys (a trial's clients had only
	// root.pem, and ca trust wanted the CA's storage).
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if out, err := run(binary, "ca", "root", "--storage", storageDir); err != nil || os.WriteFile(rootFile, []byte(out), 0o644) != nil {
		t.Fatalf("ca root: %v\n%s", err, out)
	}
	if out, err := run(binary, "ca", "trust", "--no-system", "--root-file", rootFile); err != nil {
		t.Fatalf("ca trust --root-file: %v\n%s", err, out)
	}
	if list, _ := run("certutil", "-L", "-d", db); !strings.Contains(list, "certkeeper local CA") {
		t.Errorf("ca trust --root-file: the root is not in the NSS database:\n%s", list)
	}
	if out, err := run(binary, "ca", "untrust", "--no-system", "--root-file", rootFile); err != nil {
		t.Fatalf("ca untrust --root-file: %v\n%s", err, out)
	}
	if list, _ := run("certutil", "-L", "-d", db); strings.Contains(list, "certkeeper local CA") {
		t.Errorf("the root is still in the NSS database after untrust --root-file:\n%s", list)
	}
	leafDir := t.TempDir()
	if r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "leaf.test", "--storage", storageDir, "--out-dir", leafDir); r.code != 0 {
		t.Fatalf("cert issue: %d\n%s", r.code, r.stderr)
	}
	leafFile := filepath.Join(leafDir, "certs", "leaf.test.pem")
	if out, err := run(binary, "ca", "trust", "--no-system", "--root-file", leafFile); err == nil || !strings.Contains(out, "is not a CA certificate") {
		t.Errorf("ca trust --root-file with a server's certificate: %v, want it refused as not a CA's\n%s", err, out)
	}
	// A home with no NSS database: the error says where it looked, once
	// prefixed (a trial saw "ca trust: ca trust: no trust store found").
	home = t.TempDir()
	out, err = run(binary, "ca", "trust", "--no-system", "--storage", storageDir)
	if want := "certkeeper ca trust: no trust store found: the system store was skipped, and " + home + " holds no browser's NSS database"; err == nil || !strings.Contains(out, want) {
		t.Errorf("ca trust --no-system with no NSS database: %v, want %q:\n%s", err, want, out)
	}
}

// serveTLSFiles serves HTTPS on a free loopback port with the certificate
// and key files given, until the test ends, and returns its address.
func serveTLSFiles(t *testing.T, certFile, keyFile string) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "hello")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func sha256File(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return sha256.Sum256(bytes.TrimSpace(b))
}
