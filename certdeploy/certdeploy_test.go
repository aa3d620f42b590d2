package certdeploy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// issue has certkeeper's local CA issue a certificate for names, through
// certkeeper's one issuance path, into a scratch storage.
func issue(t *testing.T, ca *localca.CA, names ...string) *storage.Certificate {
	t.Helper()
	got, err := certkeeper.Issue(t.Context(), filestore.New(t.TempDir()), certkeeper.IssueRequest{
		Names: names, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{ca}}})
	if err != nil {
		t.Fatal(err)
	}
	return got.Record
}

func serialOf(c *storage.Certificate) string {
	leaf, err := c.Leaf()
	if err != nil {
		panic(err)
	}
	return leaf.SerialNumber.String()
}

// servedSerial is the serial of the certificate served at addr for name.
func servedSerial(addr, name string) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// waitServed waits (at most 10 s) until addr serves serial for name.
func waitServed(t *testing.T, addr, name, serial string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var got string
	var err error
	for time.Now().Before(deadline) {
		if got, err = servedSerial(addr, name); err == nil && got == serial {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s serves serial %s for %s (err %v), want %s", addr, got, name, err, serial)
}

// TestHAProxy runs a real haproxy (master-worker) on a crt-list written
// by Deploy: a renewed certificate is served after the reload; a broken
// one (key from another certificate) fails haproxy -c, the previous files
// are restored, haproxy keeps serving, and the error names the
// certificate.
func TestHAProxy(t *testing.T) {
	bin := testsvc.LookPath(t, "haproxy", "install it: apt-get install haproxy")
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a, b := issue(t, ca, "a.test", "www.a.test"), issue(t, ca, "b.test")

	dir := t.TempDir()
	out := filepath.Join(dir, "certs")
	port := testsvc.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg := filepath.Join(dir, "haproxy.cfg")
	conf := "global\n\tmaxconn 100\n" +
		"defaults\n\tmode http\n\ttimeout connect 5s\n\ttimeout client 5s\n\ttimeout server 5s\n" +
		"frontend fe\n\tbind " + addr + " ssl crt-list " + filepath.Join(out, "crt-list") + "\n" +
		"\thttp-request return status 200 content-type text/plain string ok\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &Deployer{Format: HAProxy, Dir: out, Check: bin + " -c -q -f " + cfg}
	if changed, err := d.Deploy(t.Context(), []*storage.Certificate{a, b}); err != nil || !changed {
		t.Fatalf("first Deploy = %v, %v; want changed", changed, err)
	}
	if crtList := string(mustRead(t, filepath.Join(out, "crt-list"))); !strings.Contains(crtList, filepath.Join(out, "a.test.pem")) {
		t.Errorf("crt-list = %q", crtList)
	}

	proc, err := testsvc.StartProcess(t, exec.Command(bin, "-W", "-db", "-f", cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.WaitReady(20*time.Second, func(context.Context) error { _, err := servedSerial(addr, "a.test"); return err }); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, "a.test", serialOf(a))
	waitServed(t, addr, "b.test", serialOf(b))
	// SIGUSR2 to the master reloads haproxy: new workers read the files.
	d.Reload = "kill -USR2 " + strconv.Itoa(proc.Pid())

	// Nothing changed: neither check nor reload runs.
	d2 := &Deployer{Format: HAProxy, Dir: out, Check: "false", Reload: "false"}
	if changed, err := d2.Deploy(t.Context(), []*storage.Certificate{a, b}); err != nil || changed {
		t.Errorf("Deploy of the same certificates = %v, %v; want unchanged, no check", changed, err)
	}

	renewed := issue(t, ca, "a.test", "www.a.test")
	start := time.Now()
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{renewed, b}); err != nil {
		t.Fatal(err)
	}
	waitServed(t, addr, "a.test", serialOf(renewed))
	waitServed(t, addr, "www.a.test", serialOf(renewed))
	t.Logf("renewed certificate served %v after Deploy began", time.Since(start))

	before := snapshot(t, out)
	broken := issue(t, ca, "b.test")
	broken.KeyPEM = a.KeyPEM // a key that does not match
	_, err = d.Deploy(t.Context(), []*storage.Certificate{renewed, broken})
	var cerr *CheckError
	if !errors.As(err, &cerr) || len(cerr.Names) != 1 || cerr.Names[0] != "b.test" || !strings.Contains(err.Error(), "b.test") {
		t.Fatalf("Deploy of a mismatched key = %v, want a CheckError naming b.test", err)
	}
	if after := snapshot(t, out); after != before {
		t.Errorf("files after the failed check differ from before:\n%s\nwant\n%s", after, before)
	}
	waitServed(t, addr, "b.test", serialOf(b))
	waitServed(t, addr, "a.test", serialOf(renewed))
	select {
	case <-proc.Done():
		t.Fatalf("haproxy exited:\n%s", proc.Output())
	default:
	}
}

// TestLayouts: pem and nginx write what their servers read; without a
// check, a mismatched key is refused before anything is written; a
// certificate gone from the list is removed.
func TestLayouts(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a, b := issue(t, ca, "a.test"), issue(t, ca, "*.b.test", "b.test")
	for _, format := range []string{PEM, Nginx} {
		t.Run(format, func(t *testing.T) {
			out := t.TempDir()
			d := &Deployer{Format: format, Dir: out}
			if _, err := d.Deploy(t.Context(), []*storage.Certificate{a, b}); err != nil {
				t.Fatal(err)
			}
			full := mustRead(t, filepath.Join(out, "wildcard_b.test", "fullchain.pem"))
			key := mustRead(t, filepath.Join(out, "wildcard_b.test", "privkey.pem"))
			if _, err := tls.X509KeyPair(full, key); err != nil {
				t.Errorf("fullchain.pem and privkey.pem: %v", err)
			}
			if fi, _ := os.Stat(filepath.Join(out, "a.test", "privkey.pem")); fi == nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("privkey.pem mode: %v", fi)
			}
			if format == PEM {
				leaf := mustRead(t, filepath.Join(out, "a.test", "cert.pem"))
				chain := mustRead(t, filepath.Join(out, "a.test", "chain.pem"))
				if c, err := x509.ParseCertificate(pemBlock(t, leaf)); err != nil || c.Subject.CommonName == "" && len(c.DNSNames) == 0 {
					t.Errorf("cert.pem: %v", err)
				}
				if string(leaf)+string(chain) != string(a.ChainPEM) {
					t.Errorf("cert.pem + chain.pem != fullchain")
				}
			} else {
				conf := string(mustRead(t, filepath.Join(out, "certkeeper.conf")))
				for _, want := range []string{`~^[^.]+\.b\.test$ ` + filepath.Join(out, "wildcard_b.test", "fullchain.pem"), "a.test " + filepath.Join(out, "a.test", "privkey.pem")} {
					if !strings.Contains(conf, want) {
						t.Errorf("certkeeper.conf lacks %q:\n%s", want, conf)
					}
				}
			}
			bad := *b
			bad.KeyPEM = a.KeyPEM
			before := snapshot(t, out)
			if _, err := d.Deploy(t.Context(), []*storage.Certificate{a, &bad}); err == nil || !strings.Contains(err.Error(), "*.b.test") {
				t.Errorf("Deploy of a mismatched key without a check = %v, want an error naming *.b.test", err)
			}
			if snapshot(t, out) != before {
				t.Error("a refused deployment changed files")
			}
			if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(filepath.Join(out, "wildcard_b.test", "privkey.pem")); !os.IsNotExist(err) {
				t.Errorf("a certificate no longer deployed was left behind: %v", err)
			}
		})
	}
}

func pemBlock(t *testing.T, data []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	return block.Bytes
}

// snapshot describes every file under dir and its content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		b.WriteString(p + "\n" + string(data) + "\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func mustRead(t *testing.T, f string) []byte {
	t.Helper()
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestNginxWorkers runs the nginx layout the way a packaged nginx runs:
// master as root, workers as an unprivileged user, which read
// $certkeeper_cert and $certkeeper_key at each handshake. Files only root
// may read fail every handshake (and nginx -t passes them); with Group set
// to the workers' group the same files are served, with no reload.
func TestNginxWorkers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nginx's workers run as this user unless it starts as root: run the tests as root to see them read the files as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("the workers' user: %v", err)
	}
	group, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Fatalf("the workers' group: %v", err)
	}
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a := issue(t, ca, "a.test")
	// The workers must reach the directory: t.TempDir and its parent are
	// 0700; the deployment's own modes are what is tested.
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(base, "nginx")
	d := &Deployer{Format: Nginx, Dir: out}
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	n := testsvc.Nginx(t, testsvc.NginxOptions{
		User:  nobody.Username + " " + group.Name,
		Ready: []string{addr},
		HTTP: "include " + filepath.Join(out, "certkeeper.conf") + ";\n" +
			"server { listen " + addr + " ssl; ssl_certificate $certkeeper_cert; ssl_certificate_key $certkeeper_key; return 200; }\n",
	})
	if serial, err := servedSerial(addr, "a.test"); err == nil {
		t.Fatalf("workers as %s read files only root may read: served %s", nobody.Username, serial)
	}
	if log := string(mustRead(t, n.ErrorLog())); !strings.Contains(log, "Permission denied") {
		t.Errorf("the refused handshake is not nginx's permission error:\n%s", log)
	}

	d.Group = group.Name
	if changed, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil || !changed {
		t.Fatalf("Deploy with Group %s = %v, %v; want changed (the modes)", group.Name, changed, err)
	}
	waitServed(t, addr, "a.test", serialOf(a))
	for path, want := range map[string]os.FileMode{out: 0o750, filepath.Join(out, "a.test"): 0o750,
		filepath.Join(out, "a.test", "privkey.pem"): 0o640, filepath.Join(out, "certkeeper.conf"): 0o640} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if gid, _ := fileowner.GID(fi); fi.Mode().Perm() != want || strconv.Itoa(gid) != group.Gid {
			t.Errorf("%s: mode %v, group %d; want %v, group %s", path, fi.Mode().Perm(), gid, want, group.Gid)
		}
	}
	// Unchanged files in the right modes are left alone; without Group
	// they are this user's alone again.
	if changed, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil || changed {
		t.Errorf("a second Deploy = %v, %v; want unchanged", changed, err)
	}
	d.Group = ""
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(out, "a.test", "privkey.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("privkey.pem after a Deploy without Group: %v, %v; want 0600", fi, err)
	}
}

// TestGroupErrors: an unknown group name stops a deployment before any
// file is written; LookupGroup takes a name or a number.
func TestGroupErrors(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a := issue(t, ca, "a.test")
	out := filepath.Join(t.TempDir(), "out")
	d := &Deployer{Format: PEM, Dir: out, Group: "no-such-group-certkeeper"}
	_, err := d.Deploy(t.Context(), []*storage.Certificate{a})
	if err == nil || !strings.Contains(err.Error(), `no group "no-such-group-certkeeper" on this host`) {
		t.Errorf("Deploy with an unknown group = %v", err)
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("a refused deployment made %s: %v", out, serr)
	}
	if gid, err := LookupGroup("65534"); err != nil || gid != 65534 {
		t.Errorf("LookupGroup(65534) = %d, %v", gid, err)
	}
	if _, err := LookupGroup("-1"); err == nil {
		t.Error("LookupGroup(-1) succeeded")
	}
	if gid, err := LookupGroup("root"); err != nil || gid != 0 {
		t.Errorf("LookupGroup(root) = %d, %v", gid, err)
	}
}

// TestFirstDeploymentRejected: a check that rejects a first deployment
// leaves nothing behind, not even the certificate's directory, and says
// nothing was deployed; a later rejection says the previous files were
// restored. A check that prints nothing leaves no dangling ": ".
func TestFirstDeploymentRejected(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	c := issue(t, ca, "l.test")
	out := filepath.Join(t.TempDir(), "deploy")
	d := &Deployer{Format: PEM, Dir: out, Check: "exit 1"}
	_, err := d.Deploy(t.Context(), []*storage.Certificate{c})
	var cerr *CheckError
	if !errors.As(err, &cerr) || cerr.Restored {
		t.Fatalf("first Deploy with a failing check = %v, want a CheckError with nothing restored", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "nothing deployed") || strings.Contains(msg, "restored") || strings.HasSuffix(msg, ": ") || strings.HasSuffix(msg, ":") {
		t.Errorf("error = %q, want it to say nothing was deployed, without a trailing colon", msg)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left in %s after the rejected first deployment", e.Name(), out)
	}

	d.Check = ""
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{c}); err != nil {
		t.Fatal(err)
	}
	d.Check = "echo bad certificate; exit 1"
	_, err = d.Deploy(t.Context(), []*storage.Certificate{issue(t, ca, "l.test")})
	if !errors.As(err, &cerr) || !cerr.Restored || !strings.Contains(err.Error(), "previous files restored") || !strings.HasSuffix(err.Error(), ": bad certificate") {
		t.Errorf("Deploy over a deployment with a failing check = %v, want previous files restored and the output", err)
	}
}

// TestNginxMapKeywords: certificates for the single-label names "default"
// and "include", parameters of nginx's map, are served for those names
// alone: unescaped, "default" became the map's default, served for every
// name, and "include" made nginx read a certificate as configuration. A
// wildcard's certificate is served one label below its zone only, as it
// covers (the map's own "*.w.test" matched any depth).
func TestNginxMapKeywords(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a, def, inc, wild := issue(t, ca, "a.test"), issue(t, ca, "default"), issue(t, ca, "include"), issue(t, ca, "*.w.test")
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // nginx's workers must reach it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(base, "nginx")
	if _, err := (&Deployer{Format: Nginx, Dir: out}).Deploy(t.Context(), []*storage.Certificate{a, def, inc, wild}); err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	fallback := issue(t, ca, "fallback.test")
	fbCert, fbKey := filepath.Join(base, "fb.pem"), filepath.Join(base, "fb.key")
	if err := os.WriteFile(fbCert, fallback.ChainPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fbKey, fallback.KeyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	testsvc.Nginx(t, testsvc.NginxOptions{
		Ready: []string{addr},
		HTTP: "include " + filepath.Join(out, "certkeeper.conf") + ";\n" +
			"map $certkeeper_cert $cert { \"\" " + fbCert + "; default $certkeeper_cert; }\n" +
			"map $certkeeper_key $key { \"\" " + fbKey + "; default $certkeeper_key; }\n" +
			"server { listen " + addr + " ssl; ssl_certificate $cert; ssl_certificate_key $key; return 200; }\n",
	})
	for name, want := range map[string]*storage.Certificate{"a.test": a, "default": def, "include": inc, "other.test": fallback,
		"x.w.test": wild, "y.x.w.test": fallback, "w.test": fallback} {
		waitServed(t, addr, name, serialOf(want))
	}
}

// TestNginxNamesOnceAndAddresses: a name several stored certificates hold
// (the same names in another order, a name moved to another certificate)
// is one key of the nginx maps, the
// certificate that expires last, where a trial's deployment wrote it twice
// and nginx refused the file; a certificate for an IP address is served to
// a client that connects to that address without a server name, where the
// name map never matched it.
func TestNginxNamesOnceAndAddresses(t *testing.T) {
	st := filestore.New(t.TempDir())
	short := &localca.CA{Storage: st, Lifetime: 24 * time.Hour}
	long := &localca.CA{Storage: st, Lifetime: 48 * time.Hour}
	ab := issue(t, short, "b.test", "www.b.test")
	ba := issue(t, long, "www.b.test", "b.test") // the same names, expiring last
	c := issue(t, short, "c.test", "www.b.test") // a name moved to another certificate
	ip := issue(t, short, "127.0.0.1")
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // nginx's workers must reach it
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(base, "nginx")
	if _, err := (&Deployer{Format: Nginx, Dir: out}).Deploy(t.Context(), []*storage.Certificate{ab, ba, c, ip}); err != nil {
		t.Fatal(err)
	}
	conf := string(mustRead(t, filepath.Join(out, "certkeeper.conf")))
	if n := strings.Count(conf, "\twww.b.test "); n != 2 {
		t.Errorf("www.b.test is %d keys of the maps, want one in each of the two:\n%s", n, conf)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	testsvc.Nginx(t, testsvc.NginxOptions{
		Ready: []string{addr},
		HTTP: "include " + filepath.Join(out, "certkeeper.conf") + ";\n" +
			"server { listen " + addr + " ssl; ssl_certificate $certkeeper_cert; ssl_certificate_key $certkeeper_key; return 200; }\n",
	})
	for name, want := range map[string]*storage.Certificate{"b.test": ba, "www.b.test": ba, "c.test": c, "": ip} {
		waitServed(t, addr, name, serialOf(want))
	}
}

// TestHooksPrinted: what a check or post hook that succeeds prints is
// passed on, to Output (the deploy command's stderr) or else to the log;
// it was dropped, where cert issue and renew show their hooks'.
func TestHooksPrinted(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a := issue(t, ca, "a.test")
	var out bytes.Buffer
	d := &Deployer{Format: PEM, Dir: t.TempDir(), Check: "echo syntax is ok", Reload: "echo reloaded; echo twice", Output: &out}
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil {
		t.Fatal(err)
	}
	if want := "certkeeper: the check hook printed:\n    syntax is ok\ncertkeeper: the post hook printed:\n    reloaded\n    twice\n"; out.String() != want {
		t.Errorf("Output = %q, want %q", out.String(), want)
	}
	var logs bytes.Buffer
	d = &Deployer{Format: PEM, Dir: t.TempDir(), Reload: "echo reloaded", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `msg="the post hook printed" output=reloaded`) {
		t.Errorf("without Output the post hook's output is not logged:\n%s", logs.String())
	}
}

// TestBackgroundedReloadSucceeds: a reload command that succeeds and
// leaves a process running in the background with its output is a
// success, as a deploy hook's is (hook.RunTo), not a failure that a
// container trial's proxy retried, and reloaded again, at every retry.
func TestBackgroundedReloadSucceeds(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a := issue(t, ca, "a.test")
	var out bytes.Buffer
	d := &Deployer{Format: PEM, Dir: t.TempDir(), Reload: "echo reloaded; sleep 10 &", Output: &out}
	start := time.Now()
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err != nil {
		t.Fatalf("a reload that succeeded and left a process behind: %v", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("Deploy took %s: it waited for the background process", took)
	}
	if !strings.Contains(out.String(), "reloaded") || !strings.Contains(out.String(), "background") {
		t.Errorf("Output = %q, want the hook's output and a note on the background process", out.String())
	}
}

// TestFailedReloadRetriedByNextRun: a reload that failed is run again by
// the next deployment even when nothing changed, also by another
// Deployer (the next run of certkeeper deploy from cron, which found the
// files in place and reloaded nothing: a container trial); once it
// succeeds, it is not run again.
func TestFailedReloadRetriedByNextRun(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a := issue(t, ca, "a.test")
	dir := t.TempDir()
	d := &Deployer{Format: PEM, Dir: dir, Reload: "echo down; exit 1"}
	if _, err := d.Deploy(t.Context(), []*storage.Certificate{a}); err == nil {
		t.Fatal("a failing reload is not an error")
	}
	for i, want := range []string{"reloaded", ""} {
		var out bytes.Buffer
		d := &Deployer{Format: PEM, Dir: dir, Reload: "echo reloaded", Output: &out}
		changed, err := d.Deploy(t.Context(), []*storage.Certificate{a})
		if err != nil || changed {
			t.Fatalf("run %d: changed %v, %v; want unchanged files", i+2, changed, err)
		}
		if got := out.String(); want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("run %d: Output %q, want the reload run %v", i+2, got, want != "")
		}
	}
}

// TestPlantedNamesNotDeployed: a record planted in storage whose names are
// no host names (its leaf made to carry them as SANs, which a leaf check
// alone accepts) is not deployed: a security trial broke out of the
// nginx map with one and ran code as root at nginx's start. The other
// certificates are deployed all the same.
func TestPlantedNamesNotDeployed(t *testing.T) {
	st := filestore.New(t.TempDir())
	ca := &localca.CA{Storage: st}
	good := issue(t, ca, "a.test")
	data, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := storage.CertificateKey(good.Issuer, "a.test")
	if err := st.Store(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
	planted := "x ';\n}\ninit_by_lua_block { os.execute(\"id\") }\nmap $ssl_server_name $k {\n\thostnames;\n\tb.test"
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"b.test", planted}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(k)
	if err != nil {
		t.Fatal(err)
	}
	rec := &storage.Certificate{Names: []string{"b.test", planted}, Issuer: good.Issuer, KeyPEM: keyPEM,
		ChainPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter}
	if data, err = json.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	key, _ = storage.CertificateKey(good.Issuer, "b.test")
	if err := st.Store(t.Context(), key, data); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "nginx")
	if n, _, err := (&Deployer{Format: Nginx, Dir: out}).DeployStored(t.Context(), st, nil); err != nil || n != 1 {
		t.Fatalf("DeployStored = %d, %v; want the one good certificate deployed", n, err)
	}
	conf := string(mustRead(t, filepath.Join(out, "certkeeper.conf")))
	if strings.Contains(conf, "init_by_lua") || strings.Contains(conf, "b.test") || !strings.Contains(conf, "a.test") {
		t.Errorf("certkeeper.conf holds the planted record, or lacks the good one:\n%s", conf)
	}
	if _, err := layout(Nginx, out, []*storage.Certificate{rec}); err == nil || !strings.Contains(err.Error(), "is not a host name") {
		t.Errorf("layout of the planted record itself = %v, want a refusal", err)
	}
}

// TestPlantedLinksRefused: a deployment refuses an out-dir others may
// write or another user owns, and a link in place of a directory inside
// it, before it changes anything: a security trial's root deploy into a
// directory nobody owned followed links nobody planted, chmodded and
// emptied a directory outside it, and copied a root-only file back as
// nobody's.
func TestPlantedLinksRefused(t *testing.T) {
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	a := issue(t, ca, "a.test")
	victim := t.TempDir()
	if err := os.Chmod(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "important"), []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	deploy := func(dir string) error {
		_, err := (&Deployer{Format: PEM, Dir: dir}).Deploy(t.Context(), []*storage.Certificate{a})
		return err
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := deploy(open); err == nil || !strings.Contains(err.Error(), "chmod go-w") {
		t.Errorf("Deploy into a directory others may write = %v, want a refusal", err)
	}
	linked := filepath.Join(t.TempDir(), "linked")
	if err := os.Mkdir(linked, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(linked, "a.test")); err != nil {
		t.Fatal(err)
	}
	if err := deploy(linked); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Deploy with a link for a.test's directory = %v, want a refusal", err)
	}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		theirs := filepath.Join(t.TempDir(), "theirs")
		if err := os.Mkdir(theirs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(theirs, uid, -1); err != nil {
			t.Fatal(err)
		}
		if err := deploy(theirs); err == nil || !strings.Contains(err.Error(), "belongs to user") {
			t.Errorf("Deploy as root into nobody's directory = %v, want a refusal", err)
		}
	}
	fi, err := os.Stat(victim)
	if data, _ := os.ReadFile(filepath.Join(victim, "important")); err != nil || string(data) != "precious" || fi.Mode().Perm() != 0o755 {
		t.Errorf("the directory a link pointed at was changed: %v %q", err, data)
	}
	if entries, _ := os.ReadDir(victim); len(entries) != 1 {
		t.Errorf("files written through the link: %d entries in its target", len(entries))
	}
}
