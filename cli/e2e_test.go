package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// binary is the certkeeper binary built for these tests: they run it as a
// user would, as a child process.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "certkeeper-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "certkeeper")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/certkeeper").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building certkeeper: %v\n%s", err, out)
		os.Exit(1)
	}
	// Commands given no --storage keep their state here, not in the
	// host's default (/var/lib/certkeeper for root), where CI runs left
	// a local CA and certificates behind; tests of the default set
	// STATE_DIRECTORY themselves.
	os.Setenv("STATE_DIRECTORY", filepath.Join(dir, "state"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// within polls cond every 50 ms for at most d.
func within(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// result is what one run of the binary gave.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// ck runs the certkeeper binary with args, bounded by timeout.
func ck(t *testing.T, timeout time.Duration, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running certkeeper %s: %v", strings.Join(args, " "), err)
		}
		r.code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		t.Fatalf("certkeeper %s did not finish within %s\nstderr:\n%s", strings.Join(args, " "), timeout, r.stderr)
	}
	return r
}

// pebbleArgs are the flags that point cert issue at ca, with its solvers on
// the ports Pebble validates.
func pebbleArgs(ca *testca.CA, storageDir, outDir string) []string {
	return []string{
		"cert", "issue", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--storage", storageDir, "--out-dir", outDir, "--profile", "default",
		"--http-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())),
		"--tls-alpn-addr", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort())),
	}
}

// issueWithPebble starts a Pebble and has cert issue obtain names' certificate
// from it into a storage and an --out-dir of the test's, which it returns.
func issueWithPebble(t *testing.T, names ...string) (ca *testca.CA, storageDir, outDir string) {
	t.Helper()
	ca = testca.Start(t, testca.Options{})
	storageDir, outDir = t.TempDir(), t.TempDir()
	args := pebbleArgs(ca, storageDir, outDir)
	for _, n := range names {
		args = append(args, "-d", n)
	}
	if r := ck(t, time.Minute, args...); r.code != 0 {
		t.Fatalf("issuing %v: exit %d\n%s", names, r.code, r.stderr)
	}
	return ca, storageDir, outDir
}

// readPair reads the files cert issue wrote for name and checks the key
// matches the leaf.
func readPair(t *testing.T, outDir, name string) []*x509.Certificate {
	t.Helper()
	keyFile := filepath.Join(outDir, "private", name+".key")
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", keyFile, fi.Mode().Perm())
		}
	}
	chainPEM, err := os.ReadFile(filepath.Join(outDir, "certs", name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		t.Fatalf("%s.pem holds %d certificates, want leaf + chain", name, len(certs))
	}
	key, err := storage.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(certs[0].PublicKey) {
		t.Errorf("%s: key does not match the certificate", name)
	}
	return certs
}

func verifyChain(t *testing.T, certs []*x509.Certificate, roots *x509.CertPool, names ...string) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	for _, n := range names {
		if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: n, Roots: roots, Intermediates: inter}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", n, err)
		}
	}
}

func TestIssueEachChallenge(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir := t.TempDir()
	// Each challenge its own names: Pebble reuses a valid authorization
	// for the same account, and a reused one is not validated again.
	for challenge, name := range map[string]string{"tls-alpn-01": "a.test", "http-01": "b.test"} {
		t.Run(challenge, func(t *testing.T) {
			out := t.TempDir()
			args := append(pebbleArgs(ca, storageDir, out), "--challenge", challenge, "-d", name, "-d", "www."+name)
			r := ck(t, time.Minute, args...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			certs := readPair(t, out, name)
			verifyChain(t, certs, ca.IssuingRootPool(t), name, "www."+name)
			if !strings.Contains(r.stdout, name+",www."+name) || !strings.Contains(r.stdout, "not_after") {
				t.Errorf("summary line = %q", r.stdout)
			}
			for _, step := range []string{"order created", "validating " + name + " via " + challenge, "finalized", "done in"} {
				if !strings.Contains(r.stderr, step) {
					t.Errorf("progress on stderr lacks %q:\n%s", step, r.stderr)
				}
			}
		})
	}
	// Both runs shared --storage: one account.
	if n := ca.Accounts(); n != 1 {
		t.Errorf("Pebble registered %d accounts for two runs on one storage, want 1", n)
	}
}

// TestWWWBringsApex: -d www.c.test yields a certificate for www.c.test and
// c.test; --no-apex keeps it to the names given.
func TestWWWBringsApex(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	for _, tt := range []struct {
		extra []string
		want  []string
	}{{nil, []string{"www.c.test", "c.test"}}, {[]string{"--no-apex"}, []string{"www.c.test"}}} {
		out := t.TempDir()
		args := append(pebbleArgs(ca, t.TempDir(), out), tt.extra...)
		r := ck(t, time.Minute, append(args, "-d", "www.c.test")...)
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		certs := readPair(t, out, "www.c.test")
		if strings.Join(certs[0].DNSNames, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%v: DNS names = %v, want %v", tt.extra, certs[0].DNSNames, tt.want)
		}
	}
}

// TestKeyTypes: every key type is issued end to end and the key on disk
// matches the certificate; an IP address is issued via http-01.
func TestKeyTypes(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	storageDir := t.TempDir()
	for _, kt := range issuer.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			out := t.TempDir()
			name := string(kt) + ".a.test"
			r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "--key-type", string(kt), "-d", name)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
			}
			certs := readPair(t, out, name) // checks the key matches
			if got := issuer.KeyTypeOf(certs[0].PublicKey); got != kt {
				t.Errorf("certificate key type = %q, want %q", got, kt)
			}
			verifyChain(t, certs, ca.IssuingRootPool(t), name)
		})
	}
	t.Run("ip", func(t *testing.T) {
		out := t.TempDir()
		r := ck(t, time.Minute, append(pebbleArgs(ca, storageDir, out), "--challenge", "http-01", "-d", "127.0.0.1")...)
		if r.code != 0 {
			t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
		}
		certs := readPair(t, out, "127.0.0.1")
		if len(certs[0].IPAddresses) != 1 || !certs[0].IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) || len(certs[0].DNSNames) != 0 {
			t.Errorf("SANs = %v %v, want only IP 127.0.0.1", certs[0].DNSNames, certs[0].IPAddresses)
		}
	})
}

// TestBadNames: invalid names are refused with a clear message before any
// request reaches the CA.
func TestBadNames(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	bad := []struct{ name, reason string }{
		{"", "empty"},
		{"a..b", "empty label"},
		{strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + "." + strings.Repeat("d", 60) + "." + strings.Repeat("e", 50) + ".test", "253"},
		{"-a.test", "hyphen"},
		{"*.*.a.test", `"*" is only allowed as the whole leftmost label`},
		{"a.*.test", `"*" is only allowed as the whole leftmost label`},
		{"exa mple.test", ""},
		{"a_b.test", ""},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			args := pebbleArgs(ca, t.TempDir(), t.TempDir())
			args[3] = proxy.DirectoryURL()
			r := ck(t, 30*time.Second, append(args, "-d", tt.name)...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\nstderr:\n%s", r.code, r.stderr)
			}
			quoted := strconv.Quote(tt.name)
			if len(quoted) > 60 {
				quoted = quoted[:60] // long names are shortened in messages
			}
			if !strings.Contains(r.stderr, "invalid name") || !strings.Contains(r.stderr, quoted) {
				t.Errorf("stderr does not say which name is invalid:\n%s", r.stderr)
			}
			if tt.reason != "" && !strings.Contains(r.stderr, tt.reason) {
				t.Errorf("stderr does not say why (%q):\n%s", tt.reason, r.stderr)
			}
		})
	}
	if n := proxy.Requests(); n != 0 {
		t.Errorf("%d requests reached the CA for invalid names, want 0", n)
	}
}

func TestUnicodeName(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	out := t.TempDir()
	r := ck(t, time.Minute, append(pebbleArgs(ca, t.TempDir(), out), "-d", "ünï.test")...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	const puny = "xn--n-nga1b.test"
	certs := readPair(t, out, puny)
	if len(certs[0].DNSNames) != 1 || certs[0].DNSNames[0] != puny {
		t.Errorf("DNS names = %v, want [%s]", certs[0].DNSNames, puny)
	}
}

func TestCAUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "https://" + ln.Addr().String() + "/dir"
	ln.Close() // nothing listens there now
	r := ck(t, 60*time.Second, "cert", "issue", "--ca", dead, "--storage", t.TempDir(),
		"--out-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "-d", "a.test")
	if r.code != 1 {
		t.Errorf("exit %d, want 1\nstderr:\n%s", r.code, r.stderr)
	}
	if r.took > 30*time.Second {
		t.Errorf("took %s to give up, want < 30s", r.took)
	}
	if !strings.Contains(r.stderr, dead) {
		t.Errorf("stderr does not name the CA URL %s:\n%s", dead, r.stderr)
	}
}

func TestPortBusy(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	for _, tt := range []struct{ name, challenge, flag, note string }{
		{"http-01", "http-01", "--http-addr", ""},
		{"tls-alpn-01", "tls-alpn-01", "--tls-alpn-addr", ""},
		// The deprecated name still sets the listener, with a note.
		{"tls-alpn-01 deprecated --tls-addr", "tls-alpn-01", "--tls-addr", "--tls-addr is deprecated and will be removed; use --tls-alpn-addr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			args := pebbleArgs(ca, t.TempDir(), t.TempDir())
			if tt.flag == "--tls-addr" { // the deprecated name of --tls-alpn-addr, which may be given once
				i := slices.Index(args, "--tls-alpn-addr")
				args = slices.Delete(args, i, i+2)
			}
			args = append(withFlags(args, tt.flag, ln.Addr().String()), "--challenge", tt.challenge, "-d", "a.test")
			r := ck(t, 30*time.Second, args...)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\nstderr:\n%s", r.code, r.stderr)
			}
			want := tt.flag
			if tt.note != "" {
				want = "--tls-alpn-addr"
			}
			if !strings.Contains(r.stderr, "port "+port) || !strings.Contains(r.stderr, want) {
				t.Errorf("stderr does not name port %s and %s:\n%s", port, want, r.stderr)
			}
			if (tt.note != "") != strings.Contains(r.stderr, "deprecated") || !strings.Contains(r.stderr, tt.note) {
				t.Errorf("stderr has the wrong deprecation note, want %q:\n%s", tt.note, r.stderr)
			}
		})
	}
}

func TestRateLimited(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	storageDir := t.TempDir()
	args := func(extra ...string) []string {
		a := pebbleArgs(ca, storageDir, t.TempDir())
		a[3] = proxy.DirectoryURL()
		return append(a, extra...)
	}
	t.Run("no-wait", func(t *testing.T) {
		proxy.RateLimit("new-order", 1, 5*time.Second)
		r := ck(t, time.Minute, args("--no-wait", "-d", "a.test")...)
		if r.code != 1 {
			t.Fatalf("exit %d, want 1\nstderr:\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "rate-limited") || !strings.Contains(r.stderr, "retried after "+time.Now().UTC().Format("2006-01-02T")) {
			t.Errorf("stderr does not name the time it may retry:\n%s", r.stderr)
		}
	})
	t.Run("wait", func(t *testing.T) {
		proxy.RateLimit("new-order", 1, 5*time.Second)
		r := ck(t, time.Minute, args("-d", "a.test")...)
		if r.code != 0 {
			t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
		}
		if r.took < 5*time.Second {
			t.Errorf("succeeded after %s, want ≥ 5s", r.took)
		}
	})
}

// TestOfflineLocalCA: --ca local works with no CA at all, and the
// certificate verifies with "ca root" (checked by openssl, as a user would).
func TestOfflineLocalCA(t *testing.T) {
	storageDir, out := t.TempDir(), t.TempDir()
	r := ck(t, time.Minute, "cert", "issue", "--ca", "local", "-d", "localhost", "--storage", storageDir, "--out-dir", out)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	readPair(t, out, "localhost")
	status := ck(t, 30*time.Second, "status", "--storage", storageDir)
	if status.code != 0 || !strings.Contains(status.stdout, "localhost") || !strings.Contains(status.stdout, "NEXT RENEWAL") || !strings.Contains(status.stdout, "fine") {
		t.Errorf("status: exit %d\n%s%s", status.code, status.stdout, status.stderr)
	}
	root := ck(t, 30*time.Second, "ca", "root", "--storage", storageDir)
	if root.code != 0 {
		t.Fatalf("ca root: exit %d\n%s", root.code, root.stderr)
	}
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, []byte(root.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		testsvc.Unavailable(t, "openssl", "install it: apt-get install openssl", err)
	}
	certFile := filepath.Join(out, "certs", "localhost.pem")
	cmd := exec.CommandContext(t.Context(), openssl, "verify", "-CAfile", rootFile, "-untrusted", certFile, certFile)
	if outb, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(outb), ": OK") {
		t.Errorf("openssl verify: %v\n%s", err, outb)
	}
}

func TestVersion(t *testing.T) {
	r := ck(t, 30*time.Second, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "certkeeper ") {
		t.Errorf("version: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestHelp compares every command's --help (each command and group of
// the tree, "certkeeper help" for the top) with testdata/help-*.golden
// (go test -update rewrites them).
func TestHelp(t *testing.T) {
	for _, args := range helpArgs() {
		name := strings.ReplaceAll(strings.Join(args, "-"), "--help", "help")
		t.Run(name, func(t *testing.T) {
			r := ck(t, 30*time.Second, args...)
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			golden := filepath.Join("testdata", "help-"+name+".golden")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if r.stdout != string(want) {
				t.Errorf("help differs from %s (run go test -update if intended):\n%s", golden, r.stdout)
			}
		})
	}
	r := ck(t, 30*time.Second, "cert", "frobnicate")
	if r.code != 2 || !strings.Contains(r.stderr, "unknown command") {
		t.Errorf("unknown command: exit %d, stderr %q", r.code, r.stderr)
	}
}

// helpArgs are the command lines that print each command's help:
// "help" for the top, "COMMAND... --help" for every other command.
func helpArgs() [][]string {
	all := [][]string{{"help"}}
	var walk func(c *Command)
	walk = func(c *Command) {
		for _, sub := range c.Commands {
			all = append(all, append(strings.Fields(sub.FullName()), "--help"))
			walk(sub)
		}
	}
	walk(root())
	return all
}

// withFlags returns args with each flag of over ("--name", "value" pairs)
// set to its value: in place of the flag's value when args give it (a
// flag that takes one value may be given once), else added at the end.
func withFlags(args []string, over ...string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(over); i += 2 {
		if j := slices.Index(out, over[i]); j >= 0 && j+1 < len(out) {
			out[j+1] = over[i+1]
		} else {
			out = append(out, over[i], over[i+1])
		}
	}
	return out
}
