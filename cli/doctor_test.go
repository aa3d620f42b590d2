package cli

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/doctor"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// addRecords adds rrs to named's zone with a TSIG-signed RFC 2136 update.
func addRecords(t *testing.T, named *testsvc.NamedServer, zone string, rrs ...string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		m.Insert([]dns.RR{rr})
	}
	m.SetTsig(named.KeyName(), dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 10 * time.Second, TsigSecret: map[string]string{named.KeyName(): named.Secret()}}
	in, _, err := c.Exchange(m, named.Addr())
	if err != nil || in.Rcode != dns.RcodeSuccess {
		t.Fatalf("updating %s: %v %v", zone, err, in)
	}
}

// doctorResults runs "certkeeper doctor --json" and returns its exit
// status and results by check.
func doctorResults(t *testing.T, args ...string) (int, map[string]doctor.Result) {
	t.Helper()
	r := ck(t, time.Minute, append([]string{"doctor", "--json"}, args...)...)
	var list []doctor.Result
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("doctor --json: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	byCheck := map[string]doctor.Result{}
	for _, res := range list {
		byCheck[res.Check] = res
	}
	return r.code, byCheck
}

// TestDoctor: with BIND serving the names and Pebble as the CA, doctor
// passes a healthy setup, and flags a CAA record that forbids the CA, a
// closed port and an unreachable CA, each with its fix. The name is given
// as -d or as the argument.
func TestDoctor(t *testing.T) {
	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	addRecords(t, named, "a.test",
		// A name with its own records no longer matches the zone's wildcard A.
		`ok.a.test. 60 IN A 127.0.0.1`,
		`forbidden.a.test. 60 IN A 127.0.0.1`,
		`ok.a.test. 60 IN CAA 0 issue "pebble.letsencrypt.org"`,
		`forbidden.a.test. 60 IN CAA 0 issue "other-ca.example"`,
		`forbidden.a.test. 60 IN CAA 0 iodef "mailto:security@a.test"`)
	ca := testca.Start(t, testca.Options{})
	port := strconv.Itoa(testsvc.FreePort(t))
	storageDir := t.TempDir()
	base := []string{"--dns-resolver", named.Addr(), "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--storage", storageDir}

	// Healthy: every name resolves to 127.0.0.1 in the test zone.
	code, res := doctorResults(t, append(base, "-d", "ok.a.test", "--addr", "127.0.0.1:"+port)...)
	if code != 0 {
		t.Errorf("doctor on a healthy setup: exit %d: %+v", code, res)
	}
	for _, check := range []string{"name resolves", "connect-back on 127.0.0.1:" + port, "CA reachable", "clock", "CAA", "storage writable", "storage durability", "account"} {
		if r, ok := res[check]; !ok || r.Status != doctor.OK {
			t.Errorf("healthy: check %q = %+v, want ok", check, r)
		}
	}

	// A wildcard: no address to resolve (the CA checks it through DNS),
	// and CAA of the parent "test", which the authoritative-only named
	// refuses to answer, is a warning saying so, not a failure (trial 19).
	code, res = doctorResults(t, append(base, "*.a.test")...) // the name as the argument
	if r := res["name resolves"]; code != 0 || r.Status != doctor.Skip || !strings.Contains(r.Detail, "through DNS") {
		t.Errorf("wildcard: exit %d, name resolves = %+v; want exit 0 and skipped", code, r)
	}
	if r := res["CAA"]; r.Status != doctor.Warn || !strings.Contains(r.Fix, "recursive resolver") {
		t.Errorf("wildcard: CAA = %+v; want a warning that the server refused, asking for a recursive resolver", r)
	}

	tests := []struct {
		name, check, detail, fix string
		args                     []string
	}{
		{"CAA forbids the CA", "CAA", "other-ca.example", `forbidden.a.test. CAA 0 issue "pebble.letsencrypt.org"`,
			[]string{"-d", "forbidden.a.test"}},
		// Served on 127.0.0.2, but the name's address is 127.0.0.1, where the port is closed.
		{"closed port", "connect-back on 127.0.0.2:" + port, "connection refused", "open port " + port,
			[]string{"-d", "ok.a.test", "--addr", "127.0.0.2:" + port}},
		{"unreachable CA", "CA reachable", "connection refused", "check the --ca URL",
			[]string{"-d", "ok.a.test", "--ca", "https://127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t)) + "/dir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, res := doctorResults(t, withFlags(base, tt.args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			r := res[tt.check]
			if r.Status != doctor.Fail || !strings.Contains(r.Detail, tt.detail) || !strings.Contains(r.Fix, tt.fix) {
				t.Errorf("check %q = %+v\nwant FAIL, the detail naming %q, the fix %q", tt.check, r, tt.detail, tt.fix)
			}
		})
	}

	// The account: valid once registered, flagged once deactivated.
	acct := []string{"--email", "ops@a.test", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--storage", storageDir}
	if r := ck(t, time.Minute, append([]string{"account", "register", "--agree-tos"}, acct...)...); r.code != 0 {
		t.Fatalf("account register: exit %d\n%s", r.code, r.stderr)
	}
	_, res = doctorResults(t, append(base, "-d", "ok.a.test", "--email", "ops@a.test")...)
	if r := res["account"]; r.Status != doctor.OK || !strings.Contains(r.Detail, "is valid") {
		t.Errorf("registered account: %+v, want ok, valid", r)
	}
	if r := ck(t, time.Minute, append([]string{"account", "deactivate", "--yes"}, acct...)...); r.code != 0 {
		t.Fatalf("account deactivate: exit %d\n%s", r.code, r.stderr)
	}
	code, res = doctorResults(t, append(base, "-d", "ok.a.test", "--email", "ops@a.test")...)
	if r := res["account"]; code != 1 || r.Status != doctor.Fail || !strings.Contains(r.Fix, "another --email") {
		t.Errorf("deactivated account: exit %d, %+v, want FAIL with a fix", code, r)
	}
}

// TestDoctorDNS: with --dns, doctor asks the provider whether it may set
// the name's dns-01 record, setting nothing: ok with the zone's key, a
// failure naming BADSIG with a wrong one.
func TestDoctorDNS(t *testing.T) {
	d := newDNSSetup(t)
	bad := filepath.Join(t.TempDir(), "bad.key")
	if err := os.WriteFile(bad, []byte(strings.TrimSuffix(d.named.KeyName(), ".")+":"+d.named.Algorithm()+":AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"-d", "*.a.test", "--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(), "--storage", t.TempDir(),
		"--dns", "rfc2136", "--dns-server", d.named.Addr(), "--dns-resolver", d.named.Addr()}
	serial := testsvc.SOASerial(t, d.named.Addr(), "a.test")
	_, res := doctorResults(t, append(base, "--tsig-key-file", d.keyFile(t))...)
	if r := res["dns-01 provider"]; r.Status != doctor.OK {
		t.Errorf("the zone's key: dns-01 provider = %+v, want ok", r)
	}
	code, res := doctorResults(t, append(base, "--tsig-key-file", bad)...)
	if r := res["dns-01 provider"]; code != 1 || r.Status != doctor.Fail || !strings.Contains(r.Detail, "BADSIG") {
		t.Errorf("a wrong key: exit %d, dns-01 provider = %+v; want 1 and a failure saying BADSIG", code, r)
	}
	// A rehearsal with the local CA checks the key too (a trial's found
	// nothing, and the dns-01 line was gone).
	code, res = doctorResults(t, withFlags(append(base, "--tsig-key-file", bad), "--ca", "local")...)
	if r := res["dns-01 provider"]; code != 1 || r.Status != doctor.Fail || !strings.Contains(r.Detail, "BADSIG") {
		t.Errorf("a wrong key, --ca local: exit %d, dns-01 provider = %+v; want 1 and a failure saying BADSIG", code, r)
	}
	if after := testsvc.SOASerial(t, d.named.Addr(), "a.test"); after != serial {
		t.Errorf("doctor changed the zone: serial %d → %d", serial, after)
	}
	// A mistyped --dns-zone, which cert issue remembers and every renewal
	// warns of, is a warning here too (a trial's doctor said nothing).
	code, res = doctorResults(t, append(base, "--tsig-key-file", d.keyFile(t), "--dns-zone", "b.test")...)
	if r := res["dns-01 provider"]; code != 0 || r.Status != doctor.Warn || !strings.Contains(r.Detail, "in none of the zones given (b.test)") ||
		!strings.Contains(r.Fix, "--dns-zone") {
		t.Errorf("a --dns-zone that holds none of the records: exit %d, dns-01 provider = %+v; want 0 and a warning naming it", code, r)
	}
	// A name with no address (an intranet name of internal views only) is
	// no failure when dns-01 alone validates it (a trial's CI gate was
	// told to publish an A record).
	addRecords(t, d.named, "a.test", `intra.a.test. 60 IN TXT "no address"`)
	code, res = doctorResults(t, withFlags(append(base, "--tsig-key-file", d.keyFile(t)), "-d", "intra.a.test")...)
	if r := res["name resolves"]; code != 0 || r.Status != doctor.Skip || !strings.Contains(r.Detail, "none is needed") {
		t.Errorf("a name without an address, with --dns: exit %d, name resolves = %+v; want 0 and a skip saying none is needed", code, r)
	}
	// The library's errors name its fields; doctor says the flags (a
	// trial read "Resolver.Servers" where cert issue said --dns-resolver).
	dead := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	_, res = doctorResults(t, "-d", "*.a.test", "--ca", d.ca.DirectoryURL(), "--ca-roots", d.ca.ListenerRootFile(), "--storage", t.TempDir(),
		"--dns", "rfc2136", "--dns-server", dead, "--dns-resolver", dead, "--tsig-key-file", d.keyFile(t))
	if r := res["dns-01 provider"]; r.Status != doctor.Fail || !strings.Contains(r.Detail, "--dns-resolver") || strings.Contains(r.Detail, "Resolver.") {
		t.Errorf("an unreachable resolver: dns-01 provider = %+v; want a failure naming --dns-resolver, not the Go field", r)
	}
}

// TestDoctorStorageDurability: doctor reads the storage's server settings:
// a Redis keeping its data in memory only is a warning naming the setting,
// one with AOF is fine, and doctor takes a storage URL as every command
// does.
func TestDoctorStorageDurability(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{})
	rs := testsvc.Redis(t) // save "" and appendonly no
	args := []string{"-d", "localhost", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--storage", "redis://" + rs.Addr() + "/0"}
	code, res := doctorResults(t, args...)
	r := res["storage durability"]
	if code != 0 || r.Status != doctor.Warn || !strings.Contains(r.Detail, "appendonly") || r.Fix == "" {
		t.Errorf("doctor on a Redis without persistence: exit %d, %+v; want exit 0 and a warning naming appendonly, with a fix", code, r)
	}
	if w := res["storage writable"]; w.Status != doctor.OK {
		t.Errorf("storage writable on Redis = %+v, want ok", w)
	}
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	if err := rc.ConfigSet(t.Context(), "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if _, res := doctorResults(t, args...); res["storage durability"].Status != doctor.OK {
		t.Errorf("doctor on a Redis with AOF: %+v, want ok", res["storage durability"])
	}
}

// TestDoctorLocalCA: doctor --ca local checks the storage only: the local
// CA needs no DNS, no connect-back and no network (it tried to fetch
// "local" as a URL and failed).
func TestDoctorLocalCA(t *testing.T) {
	r := ck(t, 30*time.Second, "doctor", "-d", "a.test", "--ca", "local", "--storage", t.TempDir(), "--addr", "127.0.0.1:9")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	// --addr is said to be skipped, not left out (a trial thought it ignored).
	for _, w := range []string{"skip  CA reachable: the local CA validates nothing", "skip  connect-back on 127.0.0.1:9: the local CA", "ok    storage writable"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "FAIL") {
		t.Errorf("a check failed:\n%s", r.stdout)
	}
}
