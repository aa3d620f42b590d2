package cli

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// dnsSetup is a named for a.test and a Pebble resolving through it.
type dnsSetup struct {
	named *testsvc.NamedServer
	ca    *testca.CA
}

func newDNSSetup(t *testing.T) *dnsSetup {
	t.Helper()
	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	return &dnsSetup{named: named, ca: testca.Start(t, testca.Options{DNSServer: named.Addr()})}
}

// keyFile writes the TSIG key as tsig-keygen would, in a 0600 file.
func (d *dnsSetup) keyFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tsig.key")
	body := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", strings.TrimSuffix(d.named.KeyName(), "."), d.named.Algorithm(), d.named.Secret())
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// dnsArgs are the flags that set records in named and check them there.
func (d *dnsSetup) dnsArgs(t *testing.T) []string {
	_, port, _ := net.SplitHostPort(d.named.Addr())
	return []string{"--dns", "rfc2136", "--dns-server", d.named.Addr(), "--tsig-key-file", d.keyFile(t),
		"--dns-resolver", d.named.Addr(), "--dns-check-port", port}
}

// TestIssueWildcardDNS01: cert issue -d '*.a.test' -d a.test --challenge
// dns-01 --dns rfc2136 writes a certificate that verifies for x.a.test and
// a.test, leaves no _acme-challenge record, and never prints the secret.
func TestIssueWildcardDNS01(t *testing.T) {
	d := newDNSSetup(t)
	out := t.TempDir()
	args := append(pebbleArgs(d.ca, t.TempDir(), out), "--challenge", "dns-01", "-d", "*.a.test", "-d", "a.test", "--log-level", "debug")
	r := ck(t, time.Minute, append(args, d.dnsArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	certs := readPair(t, out, "wildcard_a.test")
	verifyChain(t, certs, d.ca.IssuingRootPool(t), "x.a.test", "a.test")
	if got := d.named.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q, want nothing", got)
	}
	if strings.Contains(r.stdout+r.stderr, d.named.Secret()) {
		t.Error("the TSIG secret appears in certkeeper's output")
	}
}

// TestIssueWildcardNeedsDNS: a wildcard with http-01 or tls-alpn-01 (or
// no --challenge and no --dns) is refused before any order, exit 2, naming
// --dns and no library field (trial 19); so is --dns with a challenge
// that does not use it.
func TestIssueWildcardNeedsDNS(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	for _, extra := range [][]string{{"--challenge", "http-01"}, {"--challenge", "tls-alpn-01"}, nil} {
		args := append(append(pebbleArgs(ca, t.TempDir(), t.TempDir()), "-d", "*.a.test"), extra...)
		r := ck(t, time.Minute, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "give --dns PROVIDER") || strings.Contains(r.stderr, "ChallengeOrder") {
			t.Errorf("%v -d '*.a.test': exit %d, stderr %q; want 2 naming --dns, no library field", extra, r.code, r.stderr)
		}
	}
	args := append(pebbleArgs(ca, t.TempDir(), t.TempDir()), "-d", "a.test", "--challenge", "http-01", "--dns", "exec", "--dns-exec", "/bin/true")
	if r := ck(t, time.Minute, args...); r.code != 2 || !strings.Contains(r.stderr, "--dns sets dns-01 records, which --challenge http-01 does not use") {
		t.Errorf("--challenge http-01 --dns exec: exit %d, stderr %q; want 2 saying --dns is not used", r.code, r.stderr)
	}
	if n := ca.Orders(); n != 0 {
		t.Errorf("Pebble saw %d orders, want 0", n)
	}
}

// TestIssueDNSImpliesDNS01: cert issue --dns PROVIDER with no --challenge
// validates through dns-01, as the proxy does, for a wildcard and a plain
// name alike, never listening on --http-addr (held here by another
// listener); the renewal settings say dns-01 (trial 19).
func TestIssueDNSImpliesDNS01(t *testing.T) {
	d := newDNSSetup(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, names := range [][]string{{"-d", "*.a.test", "-d", "a.test"}, {"-d", "b.a.test"}} {
		out := t.TempDir()
		args := append(append(pebbleArgs(d.ca, t.TempDir(), out), names...), d.dnsArgs(t)...)
		r := ck(t, time.Minute, withFlags(args, "--http-addr", busy.Addr().String())...)
		if r.code != 0 || !strings.Contains(r.stderr, "via dns-01") {
			t.Errorf("%v --dns rfc2136, no --challenge: exit %d, want 0 via dns-01\nstderr:\n%s", names, r.code, r.stderr)
			continue
		}
		base := strings.Replace(names[1], "*.", "wildcard_", 1)
		conf, err := os.ReadFile(filepath.Join(out, "renewal", base+".conf"))
		if err != nil || !strings.Contains(string(conf), "challenge = dns-01\n") {
			t.Errorf("renewal/%s.conf = %q (%v), want challenge = dns-01", base, conf, err)
		}
	}
}

// TestIssueTSIGKeyNote: cert issue --tsig-key (the secret on the command
// line, never remembered) says at issue time that cert renew will need
// --tsig-key-file, not weeks later from cron (trial 19); --tsig-key-file
// says nothing.
func TestIssueTSIGKeyNote(t *testing.T) {
	d := newDNSSetup(t)
	key := strings.TrimSuffix(d.named.KeyName(), ".") + ":" + d.named.Algorithm() + ":" + d.named.Secret()
	for _, keyArgs := range [][]string{{"--tsig-key", key}, {"--tsig-key-file", d.keyFile(t)}} {
		args := append(pebbleArgs(d.ca, t.TempDir(), t.TempDir()), "-d", "k.a.test", "--dns", "rfc2136", "--dns-server", d.named.Addr(),
			"--dns-resolver", d.named.Addr(), "--dns-check-port", cmdline.PortOf(d.named.Addr()))
		r := ck(t, time.Minute, append(args, keyArgs...)...)
		noted := strings.Contains(r.stderr, "cert renew will need --tsig-key-file")
		if r.code != 0 || noted != (keyArgs[0] == "--tsig-key") {
			t.Errorf("%s: exit %d, note %v; want 0, a note only for --tsig-key\nstderr:\n%s", keyArgs[0], r.code, noted, r.stderr)
		}
	}
}

// TestIssueDNSCheckedBeforeOrder: a TSIG key the DNS server refuses
// fails cert issue before an order is placed (trial 34: each attempt left
// an order at the CA), saying BADSIG; nothing reaches the zone.
func TestIssueDNSCheckedBeforeOrder(t *testing.T) {
	d := newDNSSetup(t)
	bad := filepath.Join(t.TempDir(), "bad.key")
	body := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", strings.TrimSuffix(d.named.KeyName(), "."), d.named.Algorithm(),
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(pebbleArgs(d.ca, t.TempDir(), t.TempDir()), "-d", "*.a.test", "--dns", "rfc2136", "--dns-server", d.named.Addr(),
		"--tsig-key-file", bad, "--dns-resolver", d.named.Addr(), "--dns-check-port", cmdline.PortOf(d.named.Addr()))
	r := ck(t, time.Minute, args...)
	if r.code != 1 || !strings.Contains(r.stderr, "nothing was ordered") || !strings.Contains(r.stderr, "BADSIG") {
		t.Fatalf("exit %d, want 1 saying nothing was ordered and BADSIG\nstderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "order created") || d.named.Updates() != 0 {
		t.Errorf("an order was placed or the zone updated (%d updates)\nstderr:\n%s", d.named.Updates(), r.stderr)
	}
}

// TestRenewDNSCheckedBeforeOrder: cert renew checks, as cert issue does,
// that the DNS server takes the records before it orders (trial: with
// the DNS server refusing, each cron run left a pending order at the CA).
func TestRenewDNSCheckedBeforeOrder(t *testing.T) {
	d := newDNSSetup(t)
	out, st := t.TempDir(), t.TempDir()
	keyFile := d.keyFile(t)
	args := append(pebbleArgs(d.ca, st, out), "-d", "*.a.test", "--dns", "rfc2136", "--dns-server", d.named.Addr(),
		"--tsig-key-file", keyFile, "--dns-resolver", d.named.Addr(), "--dns-check-port", cmdline.PortOf(d.named.Addr()))
	if r := ck(t, time.Minute, args...); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	// The key the renewal settings name is rotated on the server, not in the file.
	body := fmt.Sprintf("key %q {\n\talgorithm %s;\n\tsecret %q;\n};\n", strings.TrimSuffix(d.named.KeyName(), "."), d.named.Algorithm(),
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err := os.WriteFile(keyFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	updates := d.named.Updates()
	r := ck(t, time.Minute, "cert", "renew", "--force", "--out-dir", out, "--storage", st, "--ca-roots", d.ca.ListenerRootFile())
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "nothing was ordered") || !strings.Contains(r.stdout+r.stderr, "BADSIG") {
		t.Fatalf("cert renew with a refused key: exit %d, want 1 saying nothing was ordered and BADSIG\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr, "order created") || d.named.Updates() != updates {
		t.Errorf("an order was placed or the zone updated (%d updates)\nstderr:\n%s", d.named.Updates()-updates, r.stderr)
	}
}

// TestProxyWildcardKeyRefused: a --wildcard zone whose DNS server refuses
// the TSIG key stops the proxy at start, and --check-config, naming the
// wildcard and BADSIG, instead of a failure at the first handshake; a DNS
// server that does not answer is only warned about, naming --dns-server.
// A server's --managed name that only dns-01 validates is checked too.
func TestProxyWildcardKeyRefused(t *testing.T) {
	d := newDNSSetup(t)
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte(strings.TrimSuffix(d.named.KeyName(), ".")+":"+d.named.Algorithm()+":AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"proxy", "--tls-addr", "127.0.0.1:0", "--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(),
		"--storage", t.TempDir(), "--allow", "*.a.test", "--wildcard", "*.a.test", "--dns", "rfc2136", "--dns-server", d.named.Addr(),
		"--tsig-key-file", bad, "--dns-resolver", d.named.Addr()}
	for _, extra := range [][]string{nil, {"--check-config"}} {
		r := ck(t, 30*time.Second, append(base, extra...)...)
		if r.code != 1 || !strings.Contains(r.stderr, "--wildcard *.a.test") || !strings.Contains(r.stderr, "BADSIG") || strings.Contains(r.stderr, "listening") {
			t.Errorf("proxy %v: exit %d, want 1 naming --wildcard *.a.test and BADSIG before listening\nstderr:\n%s", extra, r.code, r.stderr)
		}
	}
	// The same for a server's --managed name that only dns-01 validates
	// (a DNS trial's server started, then ordered at each retry); not when
	// http-01 may validate it.
	server := []string{"server", "--no-auth", "--listen", "127.0.0.1:0", "--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(),
		"--storage", t.TempDir(), "--allow", "m.a.test", "--managed", "m.a.test", "--dns", "rfc2136", "--dns-server", d.named.Addr(),
		"--tsig-key-file", bad, "--dns-resolver", d.named.Addr(), "--check-config"}
	if r := ck(t, 30*time.Second, append(server, "--challenge", "dns-01")...); r.code != 1 || !strings.Contains(r.stderr, "--managed m.a.test") || !strings.Contains(r.stderr, "BADSIG") {
		t.Errorf("server --managed, dns-01 alone, a refused key: exit %d, want 1 naming --managed m.a.test and BADSIG\nstderr:\n%s", r.code, r.stderr)
	}
	if r := ck(t, 30*time.Second, server...); r.code != 0 {
		t.Errorf("server --managed, http-01 too, a refused key: exit %d, want 0 (http-01 may validate it)\nstderr:\n%s", r.code, r.stderr)
	}
	// A DNS server that gives no answer is a warning naming the flag, and
	// the proxy starts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	p := startProxyLogged(t, "--tls-addr", fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t)), "--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(),
		"--storage", t.TempDir(), "--allow", "*.a.test", "--wildcard", "*.a.test", "--dns", "rfc2136", "--dns-server", down,
		"--tsig-key-file", d.keyFile(t), "--dns-zone", "a.test")
	if out := p.output(); !strings.Contains(out, "the DNS provider gave no answer at start") || !strings.Contains(out, "--dns-server") {
		t.Errorf("a DNS server down at start: want a warning naming --dns-server; output:\n%s", out)
	}
}

// TestDNSKeyFileReadableByAll: a TSIG key file every user may read is
// warned about, naming the flag and chmod (trial 32); a group-readable
// one (shared with named's group) is not. A PowerDNS API key file is
// warned about too, without naming named (a user trial), which has
// nothing to do with it.
func TestDNSKeyFileReadableByAll(t *testing.T) {
	for mode, warn := range map[os.FileMode]bool{0o644: true, 0o640: false} {
		key := filepath.Join(t.TempDir(), "tsig.key")
		if err := os.WriteFile(key, []byte("certkeeper:hmac-sha256:"+base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		st, out := t.TempDir(), t.TempDir()
		r := ck(t, 30*time.Second, "cert", "issue", "--ca", "local", "-d", "a.test", "--storage", st, "--out-dir", out,
			"--dns", "rfc2136", "--dns-server", "127.0.0.1:53", "--tsig-key-file", key)
		if got := strings.Contains(r.stderr, "--tsig-key-file "+key+" is readable by every user") && strings.Contains(r.stderr, "chmod 600"); got != warn {
			t.Errorf("mode %v: warned %v, want %v\nstderr:\n%s", mode, got, warn, r.stderr)
		}
		if !warn {
			continue
		}
		// cert renew --quiet, the cron run that uses the key unattended,
		// prints this warning alone (a DNS trial's cron never showed it).
		r = ck(t, 30*time.Second, "cert", "renew", "--quiet", "--force", "--storage", st, "--out-dir", out)
		if r.code != 0 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "is readable by every user") {
			t.Errorf("cert renew --quiet with a key file every user may read: exit %d, stdout %q, stderr %q; want exit 0 and the warning alone", r.code, r.stdout, r.stderr)
		}
		// cert renew builds a provider per certificate: one warning a run.
		var stderr strings.Builder
		env := &Env{Stderr: &stderr}
		c := &dnsConfig{Provider: "rfc2136", Server: "127.0.0.1:53", TSIGKeyFile: key}
		for range 3 {
			if _, err := c.provider(env); err != nil {
				t.Fatal(err)
			}
		}
		if n := strings.Count(stderr.String(), "is readable by every user"); n != 1 {
			t.Errorf("3 providers from one key file: %d warnings, want 1", n)
		}
		stderr.Reset()
		apiKey := filepath.Join(t.TempDir(), "pdns.key")
		if err := os.WriteFile(apiKey, []byte("api-key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(apiKey, mode); err != nil {
			t.Fatal(err)
		}
		c = &dnsConfig{Provider: "powerdns", APIURL: "http://127.0.0.1:1", APIKeyFile: apiKey}
		_, _ = c.provider(env) // only the warning matters here
		if got := stderr.String(); !strings.Contains(got, "--dns-api-key-file "+apiKey+" is readable by every user") ||
			!strings.Contains(got, "(640 to share it with a group)") || strings.Contains(got, "named") {
			t.Errorf("a PowerDNS API key file every user may read: stderr %q, want a warning with chmod 640 for a group, not named's", got)
		}
	}
}

// TestDNSPersistRecord: dns-persist-record prints the record and sets it
// through rfc2136; then three cert issue runs with --challenge
// dns-persist-01 succeed while named receives no update.
func TestDNSPersistRecord(t *testing.T) {
	d := newDNSSetup(t)
	storageDir := t.TempDir()
	r := ck(t, time.Minute, append([]string{"dns-persist-record", "-d", "a.test", "--policy-wildcard", "--until", "8760h",
		"--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(), "--storage", storageDir}, d.dnsArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("dns-persist-record: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	line := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(line, `_validation-persist.a.test. 3600 IN TXT "pebble.letsencrypt.org; accounturi=https://`) ||
		!strings.Contains(line, "; policy=wildcard; persistUntil=") {
		t.Errorf("printed record = %q", line)
	}
	if got := d.named.DigTXT(t, "_validation-persist.a.test"); !strings.Contains(line, got) || got == "" {
		t.Errorf("dig TXT _validation-persist.a.test = %s; printed %s", got, line)
	}
	before := d.named.Updates()
	for i := range 3 {
		out := t.TempDir()
		names := []string{"-d", "a.test"}
		if i == 1 {
			names = []string{"-d", "*.a.test", "-d", "a.test"}
		}
		args := append(append(pebbleArgs(d.ca, storageDir, out), "--challenge", "dns-persist-01",
			"--dns-resolver", d.named.Addr(), "--dns-check-port", cmdline.PortOf(d.named.Addr())), names...)
		r := ck(t, time.Minute, args...)
		if r.code != 0 {
			t.Fatalf("issuance %d: exit %d\nstderr:\n%s", i+1, r.code, r.stderr)
		}
		// Pebble may also hand out an authorization already valid (the
		// draft lets a CA validate the record when the order is created):
		// then nothing is validated, and still nothing is updated.
		if !strings.Contains(r.stderr, "via dns-persist-01") && (i == 0 || !strings.Contains(r.stderr, "a.test is already authorized")) {
			t.Errorf("issuance %d did not validate via dns-persist-01:\n%s", i+1, r.stderr)
		}
	}
	if n := d.named.Updates() - before; n != 0 {
		t.Errorf("named applied %d updates during 3 issuances, want 0", n)
	}
}

// TestDNSPersistMissingRecord: cert issue --challenge dns-persist-01 for a
// name without a record, or a wildcard whose record lacks
// policy=wildcard, fails before ordering (no order at Pebble), naming
// dns-persist-record.
func TestDNSPersistMissingRecord(t *testing.T) {
	d := newDNSSetup(t)
	storageDir := t.TempDir()
	caArgs := []string{"--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(), "--storage", storageDir}
	r := ck(t, time.Minute, append(append([]string{"dns-persist-record", "-d", "b.a.test"}, caArgs...), d.dnsArgs(t)...)...)
	if r.code != 0 {
		t.Fatalf("dns-persist-record: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	for _, tc := range []struct{ name, want string }{
		{"c.a.test", "no dns-persist-01 record for this CA and account at _validation-persist.c.a.test: it has no TXT value"},
		{"*.b.a.test", "lacks policy=wildcard"},
	} {
		before := d.ca.Orders()
		args := append(pebbleArgs(d.ca, storageDir, t.TempDir()), "--challenge", "dns-persist-01", "-d", tc.name,
			"--dns-resolver", d.named.Addr(), "--dns-check-port", cmdline.PortOf(d.named.Addr()))
		r := ck(t, time.Minute, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "nothing was ordered") || !strings.Contains(r.stderr, tc.want) ||
			!strings.Contains(r.stderr, "certkeeper dns-persist-record") {
			t.Errorf("-d %s: exit %d, want 1 saying nothing was ordered, %q and naming dns-persist-record\nstderr:\n%s", tc.name, r.code, tc.want, r.stderr)
		}
		if n := d.ca.Orders() - before; n != 0 {
			t.Errorf("-d %s: %d orders placed, want 0", tc.name, n)
		}
	}
}

// TestProxyWildcard: proxy --wildcard '*.a.test' with dns-01 serves 20
// subdomains from one order.
func TestProxyWildcard(t *testing.T) {
	d := newDNSSetup(t)
	port := testsvc.FreePort(t)
	args := append([]string{"--tls-addr", fmt.Sprintf("127.0.0.1:%d", port), "--ca", d.ca.DirectoryURL(),
		"--ca-roots", d.ca.ListenerRootFile(), "--storage", t.TempDir(), "--allow", "*.a.test", "--allow", "a.test",
		"--backend", newBackend(t, "ok").url, "--wildcard", "*.a.test", "--challenge", "dns-01"}, d.dnsArgs(t)...)
	startProxy(t, args...)
	roots := d.ca.IssuingRootPool(t)
	var wg sync.WaitGroup
	serials := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Go(func() {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
				&tls.Config{ServerName: fmt.Sprintf("site%d.a.test", i), RootCAs: roots})
			if errs[i] = err; err == nil {
				serials[i] = conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
				conn.Close()
			}
		})
	}
	wg.Wait()
	for i, s := range serials {
		if errs[i] != nil {
			t.Fatalf("handshake for site%d.a.test: %v", i, errs[i])
		}
		if s != serials[0] {
			t.Errorf("site%d.a.test got serial %s, site0 %s", i, s, serials[0])
		}
	}
	if n := d.ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want 1", n)
	}
	// Without a DNS provider, --wildcard is refused at start; with one but
	// no DNS challenge, so is it, saying which.
	r := ck(t, 30*time.Second, "proxy", "--tls-addr", "127.0.0.1:0", "--ca", d.ca.DirectoryURL(), "--allow", "a.test", "--wildcard", "*.a.test")
	if r.code != 2 || !strings.Contains(r.stderr, "give --dns (dns-01: rfc2136, powerdns or exec), or --challenge dns-persist-01") {
		t.Errorf("proxy --wildcard without --dns: exit %d, stderr %q; want 2 naming --dns and dns-persist-01", r.code, r.stderr)
	}
	r = ck(t, 30*time.Second, append([]string{"proxy", "--tls-addr", "127.0.0.1:0", "--ca", d.ca.DirectoryURL(), "--allow", "a.test", "--wildcard", "*.a.test",
		"--challenge", "tls-alpn-01"}, d.dnsArgs(t)...)...)
	if r.code != 2 || !strings.Contains(r.stderr, "add dns-01 (or dns-persist-01) to --challenge") {
		t.Errorf("proxy --wildcard --dns --challenge tls-alpn-01: exit %d, stderr %q; want 2 asking for dns-01 in --challenge", r.code, r.stderr)
	}
}

// TestProxyWildcardPersist: proxy --wildcard with --challenge
// dns-persist-01 and no DNS provider (the record set once, the proxy
// holding no DNS key) obtains the wildcard and serves its subdomains,
// and updates nothing in the zone (DNS trial: it was refused at start).
func TestProxyWildcardPersist(t *testing.T) {
	d := newDNSSetup(t)
	storageDir := t.TempDir()
	if r := ck(t, time.Minute, append([]string{"dns-persist-record", "-d", "a.test", "--policy-wildcard", "--until", "8760h",
		"--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(), "--storage", storageDir}, d.dnsArgs(t)...)...); r.code != 0 {
		t.Fatalf("dns-persist-record: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	updates := d.named.Updates()
	port := testsvc.FreePort(t)
	startProxy(t, "--tls-addr", fmt.Sprintf("127.0.0.1:%d", port), "--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(),
		"--storage", storageDir, "--allow", "*.a.test", "--backend", newBackend(t, "ok").url, "--wildcard", "*.a.test",
		"--challenge", "dns-persist-01", "--dns-resolver", d.named.Addr(), "--dns-check-port", cmdline.PortOf(d.named.Addr()))
	roots := d.ca.IssuingRootPool(t)
	if a, b := serialOf(t, port, "x.a.test", roots), serialOf(t, port, "y.a.test", roots); a != b {
		t.Errorf("x.a.test and y.a.test got serials %s and %s, want one wildcard certificate", a, b)
	}
	if n := d.named.Updates() - updates; n != 0 {
		t.Errorf("named applied %d updates, want 0", n)
	}
}

// TestDNSConfigKeys: every DNS setting has a config key, and flags win.
func TestDNSConfigKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "proxy.yaml")
	body := `wildcard: ["*.a.test"]
dns: rfc2136
dns_server: "127.0.0.1:5353"
tsig_key_file: "/etc/certkeeper/tsig.key"
dns_exec: "/bin/true"
dns_exec_mode: raw
dns_api_url: "http://127.0.0.1:8081"
dns_api_key_file: "/etc/certkeeper/pdns.key"
dns_resolver: ["127.0.0.1:53"]
dns_check_port: 5353
dns_timeout: 30s
dns_no_check: true
`
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadProxyConfig(&source{file: f, set: map[string]bool{"dns-server": true}}, &proxyConfig{engineConfig: engineConfig{DNS: dnsConfig{Server: "127.0.0.1:53"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := dnsConfig{Provider: "rfc2136", Server: "127.0.0.1:53", TSIGKeyFile: "/etc/certkeeper/tsig.key", Exec: "/bin/true", ExecMode: "raw",
		APIURL: "http://127.0.0.1:8081", APIKeyFile: "/etc/certkeeper/pdns.key", Resolvers: []string{"127.0.0.1:53"}, CheckPort: 5353, Timeout: 30 * time.Second, NoCheck: true}
	if fmt.Sprint(cfg.DNS) != fmt.Sprint(want) || fmt.Sprint(cfg.Wildcards) != "[*.a.test]" {
		t.Errorf("loaded %+v, wildcards %v; want %+v", cfg.DNS, cfg.Wildcards, want)
	}
}

// TestServerManagedWildcard: certkeeper server keeps a managed wildcard
// (--managed '*.a.test,a.test' over dns-01), obtained at start with no
// request, and hands it out for every subdomain with no further order.
func TestServerManagedWildcard(t *testing.T) {
	d := newDNSSetup(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	base := "http://" + addr
	args := append([]string{"--listen", addr, "--token-file", writeTokens(t), "--ca", d.ca.DirectoryURL(),
		"--ca-roots", d.ca.ListenerRootFile(), "--storage", t.TempDir(), "--allow", "*.a.test", "--allow", "a.test",
		"--managed", "*.a.test,a.test", "--wildcard", "*.a.test", "--challenge", "dns-01"}, d.dnsArgs(t)...)
	startServer(t, args...)
	deadline := time.Now().Add(30 * time.Second)
	for d.ca.Orders() == 0 || d.named.DigTXT(t, "_acme-challenge.a.test") != "" {
		if time.Now().After(deadline) {
			t.Fatalf("the managed wildcard was not obtained within 30 s of the start (orders %d)", d.ca.Orders())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var serial string
	for _, name := range []string{"a.test", "x.a.test", "www.a.test", "api.a.test"} {
		_, tc := apiCert(t, base, name)
		if s := tc.Leaf.SerialNumber.String(); serial == "" {
			serial = s
		} else if s != serial {
			t.Errorf("%s got serial %s, want the wildcard's %s", name, s, serial)
		}
	}
	if n := d.ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want 1 (the managed wildcard only)", n)
	}
}

// TestIssueHiddenPrimary: the resolver (--dns-resolver) knows no zone,
// as for a hidden primary or split-horizon DNS; with --dns-server alone,
// certkeeper finds the zone at the primary, checks the record there, and
// issues a wildcard + apex. Without a server that knows the zone, the
// error names every server asked and the flags that change them.
func TestIssueHiddenPrimary(t *testing.T) {
	primary := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"w.test"}})
	empty := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{}})
	d := &dnsSetup{named: primary, ca: testca.Start(t, testca.Options{DNSServer: primary.Addr()})}
	key := d.keyFile(t)

	// A primary that does not answer: both servers are named in the error.
	closed := fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	args := append(pebbleArgs(d.ca, t.TempDir(), t.TempDir()), "--challenge", "dns-01", "-d", "*.w.test", "-d", "w.test",
		"--dns", "rfc2136", "--dns-server", closed, "--tsig-key-file", key, "--dns-resolver", empty.Addr(), "--dns-timeout", "10s")
	r := ck(t, time.Minute, args...)
	if r.code == 0 {
		t.Fatal("issuance with no server knowing w.test succeeded")
	}
	for _, want := range []string{"finding the zone of _acme-challenge.w.test.", empty.Addr(), closed, "--dns-resolver", "--dns-server", "--dns-zone"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	t.Logf("no server knows the zone: %s", strings.TrimSpace(r.stderr[strings.LastIndex(strings.TrimSpace(r.stderr), "\n")+1:]))

	out := t.TempDir()
	args = append(pebbleArgs(d.ca, t.TempDir(), out), "--challenge", "dns-01", "-d", "*.w.test", "-d", "w.test",
		"--dns", "rfc2136", "--dns-server", primary.Addr(), "--tsig-key-file", key, "--dns-resolver", empty.Addr(), "--dns-timeout", "10s")
	r = ck(t, time.Minute, args...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	verifyChain(t, readPair(t, out, "wildcard_w.test"), d.ca.IssuingRootPool(t), "x.w.test", "w.test")
	if got := primary.DigTXT(t, "_acme-challenge.w.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.w.test = %q, want nothing", got)
	}
	if n := primary.Updates(); n != 4 {
		t.Errorf("the primary applied %d updates, want 4", n)
	}
}

// TestIssueWildcardPowerDNS: cert issue -d '*.a.test' -d a.test --dns
// powerdns sets both values of _acme-challenge.a.test through PowerDNS's
// HTTP API (one RRset, merged), Pebble validates them at pdns_server, and
// nothing is left afterwards. The API key is never printed, not even in
// debug logs or in the error a wrong key gives.
func TestIssueWildcardPowerDNS(t *testing.T) {
	pdns := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	ca := testca.Start(t, testca.Options{DNSServer: pdns.Addr()})
	keyFile := func(key string) string {
		f := filepath.Join(t.TempDir(), "pdns.key")
		if err := os.WriteFile(f, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	dnsArgs := func(key string) []string {
		return []string{"--challenge", "dns-01", "-d", "*.a.test", "-d", "a.test", "--log-level", "debug",
			"--dns", "powerdns", "--dns-api-url", pdns.APIURL(), "--dns-api-key-file", keyFile(key),
			"--dns-resolver", pdns.Addr(), "--dns-check-port", cmdline.PortOf(pdns.Addr()), "--dns-timeout", "10s"}
	}

	// The wrong key contains the right one: neither may be printed.
	r := ck(t, time.Minute, append(pebbleArgs(ca, t.TempDir(), t.TempDir()), dnsArgs("wrong-"+pdns.APIKey())...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, pdns.APIURL()) {
		t.Errorf("wrong API key: exit %d, stderr:\n%s\nwant a failure naming the API and the 401", r.code, r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, pdns.APIKey()) {
		t.Errorf("the API key appears in certkeeper's output with a wrong key:\n%s", r.stderr)
	}

	out := t.TempDir()
	r = ck(t, time.Minute, append(pebbleArgs(ca, t.TempDir(), out), dnsArgs(pdns.APIKey())...)...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	verifyChain(t, readPair(t, out, "wildcard_a.test"), ca.IssuingRootPool(t), "x.a.test", "a.test")
	if got := pdns.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test at PowerDNS = %q, want nothing", got)
	}
	if strings.Contains(r.stdout+r.stderr, pdns.APIKey()) {
		t.Error("the API key appears in certkeeper's output")
	}
}

// TestIssueExecLegoRaw: --dns exec --dns-exec-mode raw runs a hook written
// for lego's EXEC_MODE=RAW unchanged (present|cleanup -- DOMAIN TOKEN
// KEYAUTH; it computes the TXT value with openssl and calls nsupdate), for
// a wildcard and its apex; an unknown mode is refused before any order.
func TestIssueExecLegoRaw(t *testing.T) {
	d := newDNSSetup(t)
	testsvc.LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
	testsvc.LookPath(t, "openssl", "install Debian's openssl")
	script, err := filepath.Abs("../solver/dns01/testdata/lego-exec-raw.sh")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(d.named.Addr())
	t.Setenv("NS_HOST", host)
	t.Setenv("NS_PORT", port)
	t.Setenv("TSIG", d.named.Algorithm()+":"+d.named.KeyName()+":"+d.named.Secret())
	args := func(mode, out string) []string {
		return append(pebbleArgs(d.ca, t.TempDir(), out), "--challenge", "dns-01", "-d", "*.a.test", "-d", "a.test",
			"--dns", "exec", "--dns-exec", script, "--dns-exec-mode", mode,
			"--dns-resolver", d.named.Addr(), "--dns-check-port", port, "--dns-timeout", "10s")
	}
	r := ck(t, time.Minute, args("lego", t.TempDir())...)
	if r.code != 2 || !strings.Contains(r.stderr, "--dns-exec-mode") || d.ca.Orders() != 0 {
		t.Errorf("--dns-exec-mode lego: exit %d, %d orders, stderr %q; want 2 naming the flag, no order", r.code, d.ca.Orders(), r.stderr)
	}
	out := t.TempDir()
	r = ck(t, time.Minute, args("raw", out)...)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	verifyChain(t, readPair(t, out, "wildcard_a.test"), d.ca.IssuingRootPool(t), "x.a.test", "a.test")
	if n := d.named.Updates(); n != 4 {
		t.Errorf("named applied %d updates, want 4", n)
	}
	if got := d.named.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q, want nothing", got)
	}
}

// TestIssueDNS01Progress: while a dns-01 record has not reached the
// zone's nameservers, cert issue says so every few seconds, naming the
// record and the nameservers that lack it; when it never does, the error
// names them too.
func TestIssueDNS01Progress(t *testing.T) {
	t.Parallel()
	d := newDNSSetup(t)
	nsupdate := testsvc.LookPath(t, "nsupdate", "install Debian's bind9-dnsutils")
	host, port, _ := net.SplitHostPort(d.named.Addr())
	update := fmt.Sprintf(`printf 'server %s %s\nupdate %%s %%s 60 TXT "%%s"\nsend\n' "$op" "$2" "$3" | %s -t 5 -y %s:%s:%s`,
		host, port, nsupdate, d.named.Algorithm(), d.named.KeyName(), d.named.Secret())
	// The record reaches named 6 s after present returns: a slow provider.
	slow := filepath.Join(t.TempDir(), "slow.sh")
	body := "#!/bin/sh\ncase \"$1\" in present) op=add; (sleep 6; " + update + ") >/dev/null 2>&1 & ;;\n" +
		"cleanup) op=delete; " + update + " ;; esac\n"
	if err := os.WriteFile(slow, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	issue := func(program, timeout string) result {
		args := append(pebbleArgs(d.ca, t.TempDir(), t.TempDir()), "--challenge", "dns-01", "-d", "a.test", "--dns", "exec",
			"--dns-exec", program, "--dns-resolver", d.named.Addr(), "--dns-check-port", port, "--dns-timeout", timeout)
		return ck(t, time.Minute, args...)
	}
	waiting := "certkeeper: waiting for _acme-challenge.a.test TXT at ns.a.test (127.0.0.1:" + port + "); "
	r := issue(slow, "30s")
	if n := strings.Count(r.stderr, waiting); r.code != 0 || n < 2 || n > 3 || !strings.Contains(r.stderr, "so far (up to 30s)") {
		t.Fatalf("exit %d, %d progress lines; want 0, and a line every 5 s of the 6 s wait:\n%s", r.code, n, r.stderr)
	}
	t.Logf("slow provider:\n%s", r.stderr)
	// 5 s, not less: under the race detector on a busy machine named's
	// first answer can take seconds, and the wait must end on the missing
	// record, not on finding the nameservers.
	r = issue("/bin/true", "5s")
	if r.code != 1 || !strings.Contains(r.stderr, waiting) || !strings.Contains(r.stderr, "within 5s") ||
		!strings.Contains(r.stderr, "ns.a.test (127.0.0.1:"+port+") does not serve the value yet") {
		t.Errorf("never set: exit %d; want 1, progress, and the nameserver lacking the record named:\n%s", r.code, r.stderr)
	}
	t.Logf("never set:\n%s", r.stderr)
}

// TestDNSPersistRecordUsage: dns-persist-record refuses, exit 2 and before
// asking the CA, an --until that is past and a wildcard -d, pointing at
// --policy-wildcard (trial 19).
func TestDNSPersistRecordUsage(t *testing.T) {
	base := []string{"dns-persist-record", "--ca", "https://127.0.0.1:1/dir", "--storage", t.TempDir()}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-d", "a.test", "--until", "2020-01-01"}, "--until 2020-01-01: 2020-01-01T00:00:00Z is past"},
		{[]string{"-d", "*.a.test"}, "give -d a.test --policy-wildcard"},
	} {
		r := ck(t, 30*time.Second, append(base, tt.args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// TestDNSPersistRecordSealedStorage: dns-persist-record finds the account
// where the proxy or server keeps it, with --storage-key-file: the record
// authorizes the account registered there, not a new one in a directory.
// (It used to open --storage as a plain directory and register anew.)
func TestDNSPersistRecordSealedStorage(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	dir := t.TempDir()
	keyFile, storageDir := filepath.Join(dir, "storage.key"), filepath.Join(dir, "state")
	r := ck(t, 30*time.Second, "storage", "keygen")
	if err := os.WriteFile(keyFile, []byte(r.stdout), 0o600); err != nil || r.code != 0 {
		t.Fatalf("storage keygen: exit %d, %v\n%s", r.code, err, r.stderr)
	}
	state := []string{"--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", storageDir,
		"--storage-key-file", keyFile, "--email", "ops@a.test"}
	r = ck(t, time.Minute, append([]string{"account", "register", "--agree-tos"}, state...)...)
	url, ok := strings.CutPrefix(strings.SplitN(r.stdout, "\n", 2)[0], "url:")
	if r.code != 0 || !ok {
		t.Fatalf("account register: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = ck(t, time.Minute, append([]string{"dns-persist-record", "-d", "a.test"}, state...)...)
	if w := "accounturi=" + strings.TrimSpace(url) + `"`; r.code != 0 || !strings.Contains(r.stdout, w) {
		t.Errorf("dns-persist-record: exit %d, want 0 and a record with %q\nstdout:\n%s\nstderr:\n%s", r.code, w, r.stdout, r.stderr)
	}
}

// TestDNSCheckPortRange: a --dns-check-port that is no port is bad usage
// at start, not a dial error at the first propagation check.
func TestDNSCheckPortRange(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(keyFile, []byte("k:hmac-sha256:c2VjcmV0c2VjcmV0c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--allow", "a.example", "--storage", t.TempDir(), "--dns", "rfc2136",
		"--dns-server", "127.0.0.1:1", "--tsig-key-file", keyFile, "--dns-resolver", "127.0.0.1:1", "--dns-check-port", "99999")
	if r.code != 1 || !strings.Contains(r.stderr, "--dns-check-port 99999: want a port number, 1 to 65535") {
		t.Errorf("--dns-check-port 99999: exit %d, stderr:\n%s\nwant the configuration refused naming the flag", r.code, r.stderr)
	}
}

// TestDNSFlagsWithoutProvider: a DNS provider's settings without --dns
// (a config with tsig_key_file but no dns: line) are refused at start,
// naming them, rather than accepted and never used (or failing at the
// first dns-01 order).
func TestDNSFlagsWithoutProvider(t *testing.T) {
	file := writeConfig(t, "allow: a.example\ntsig_key_file: /etc/tsig.key\ndns_timeout: 5m\n")
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", file, "--storage", t.TempDir())
	if want := "--tsig-key-file, --dns-timeout (tsig_key_file, dns_timeout) need --dns PROVIDER"; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("proxy: exit %d, want 1 and %q:\n%s", r.code, want, r.stderr)
	}
	dir := t.TempDir()
	r = ck(t, 30*time.Second, "cert", "issue", "-d", "a.test", "--ca", "local", "--dns-no-check", "--storage", filepath.Join(dir, "st"), "--out-dir", filepath.Join(dir, "out"))
	if want := "--dns-no-check (dns_no_check) needs --dns PROVIDER"; r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("cert issue: exit %d, want 2 and %q:\n%s", r.code, want, r.stderr)
	}
	// Their defaults, written out, are no mistake.
	r = ck(t, 30*time.Second, "proxy", "--check-config", "--config", writeConfig(t, "allow: a.example\ndns_timeout: 2m\ndns_exec_mode: default\ndns_check_port: 53\n"), "--storage", t.TempDir())
	if r.code != 0 {
		t.Errorf("defaults written out: exit %d:\n%s", r.code, r.stderr)
	}
}
