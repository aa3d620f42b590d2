package cli

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/internal/testca"
)

// TestCertRenewRemembers (issue 17 item 2): a certificate issued with a
// non-default CA, roots file, challenge, tls-alpn-01 address and profile
// renews from the same CA, with the same challenge and profile, on a bare
// cert renew (only --out-dir, --force, and --storage to keep the test's
// state out of the system's); a flag given to renew overrides and is
// remembered, --force is not; cert show prints the settings; and a
// settings file its group may write is refused.
func TestCertRenewRemembers(t *testing.T) {
	t.Parallel()
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"default":    {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
		"shortlived": {Description: "6 days", ValidityPeriod: 6 * 24 * time.Hour},
	}})
	storageDir, out := t.TempDir(), t.TempDir()
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort()))
	issue := ck(t, time.Minute, "cert", "issue", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
		"--storage", storageDir, "--out-dir", out, "--profile", "shortlived",
		"--challenge", "tls-alpn-01", "--tls-addr", tlsAddr, "-d", "remember.test")
	if issue.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", issue.code, issue.stderr)
	}
	conf := filepath.Join(out, "renewal", "remember.test.conf")
	fi, err := os.Stat(conf)
	if err != nil {
		t.Fatalf("cert issue wrote no renewal settings: %v", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", conf, fi.Mode().Perm())
	}
	lifetime := func() time.Duration {
		t.Helper()
		leaf := readPair(t, out, "remember.test")[0]
		return leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Hour)
	}
	if got := lifetime(); got != 6*24*time.Hour {
		t.Fatalf("issued certificate lives %s, want the shortlived profile's 144h", got)
	}

	renewRun := func(extra ...string) result {
		t.Helper()
		args := append([]string{"cert", "renew", "--out-dir", out, "--storage", storageDir, "--force"}, extra...)
		return ck(t, time.Minute, args...)
	}
	orders := ca.Orders()
	r := renewRun()
	if r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("bare cert renew: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := ca.Orders() - orders; n != 1 {
		t.Errorf("the test CA got %d orders, want 1: the renewal went elsewhere", n)
	}
	if got := lifetime(); got != 6*24*time.Hour {
		t.Errorf("renewed certificate lives %s, want the remembered shortlived profile's 144h", got)
	}

	// A flag given to renew overrides, and is remembered; --force is not.
	orders = ca.Orders()
	hookLog := filepath.Join(t.TempDir(), "deploy.log")
	if r := renewRun("--profile", "default", "--deploy-hook", "echo $CERTKEEPER_NAME >> "+hookLog); r.code != 0 {
		t.Fatalf("cert renew --profile default: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := lifetime(); got != 90*24*time.Hour {
		t.Errorf("after --profile default the certificate lives %s, want 2160h", got)
	}
	if r := renewRun(); r.code != 0 {
		t.Fatalf("bare cert renew after the override: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := lifetime(); got != 90*24*time.Hour {
		t.Errorf("the --profile override was not remembered: the next renewal lives %s, want 2160h", got)
	}
	if n := ca.Orders() - orders; n != 2 {
		t.Errorf("the test CA got %d orders, want 2", n)
	}
	if log, _ := os.ReadFile(hookLog); string(log) != "remember.test\nremember.test\n" {
		t.Errorf("the deploy hook given once ran for %q, want twice (it is remembered)", log)
	}
	data, _ := os.ReadFile(conf)
	for _, want := range []string{"ca = " + ca.DirectoryURL(), "challenge = tls-alpn-01", "tls_alpn_addr = " + tlsAddr, "profile = default"} {
		if !strings.Contains(string(data), want+"\n") {
			t.Errorf("%s lacks %q:\n%s", conf, want, data)
		}
	}
	if strings.Contains(string(data), "force") {
		t.Errorf("the one-off --force was remembered:\n%s", data)
	}

	show := ck(t, time.Minute, "cert", "show", "remember.test", "--out-dir", out)
	for _, want := range []string{"ca = " + ca.DirectoryURL(), "ca_roots = " + ca.ListenerRootFile(), "challenge = tls-alpn-01", "profile = default", "not_after: "} {
		if show.code != 0 || !strings.Contains(show.stdout, want) {
			t.Errorf("cert show: exit %d, lacks %q\n%s%s", show.code, want, show.stdout, show.stderr)
		}
	}

	// Settings its group may write are refused: their hooks would run as
	// this user.
	if runtime.GOOS == "windows" {
		return
	}
	if err := os.Chmod(conf, 0o620); err != nil {
		t.Fatal(err)
	}
	orders = ca.Orders()
	r = renewRun()
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "chmod 600 "+conf) {
		t.Errorf("group-writable settings: exit %d, want 1 and a message naming chmod 600 %s\nstdout:\n%s\nstderr:\n%s", r.code, conf, r.stdout, r.stderr)
	}
	if n := ca.Orders() - orders; n != 0 {
		t.Errorf("group-writable settings: %d orders, want none", n)
	}
	if show := ck(t, time.Minute, "cert", "show", "remember.test", "--out-dir", out); show.code != 1 || !strings.Contains(show.stderr, "refused") {
		t.Errorf("cert show of group-writable settings: exit %d\n%s%s", show.code, show.stdout, show.stderr)
	}
}

// TestCertRenewRemembersDNS01: a wildcard issued with dns-01 through
// rfc2136 renews on a bare cert renew; the settings name the TSIG key's
// file and never hold the secret.
func TestCertRenewRemembersDNS01(t *testing.T) {
	d := newDNSSetup(t)
	storageDir, out := t.TempDir(), t.TempDir()
	args := append(pebbleArgs(d.ca, storageDir, out), "--challenge", "dns-01", "-d", "*.a.test", "-d", "a.test")
	if r := ck(t, time.Minute, append(args, d.dnsArgs(t)...)...); r.code != 0 {
		t.Fatalf("cert issue: exit %d\n%s", r.code, r.stderr)
	}
	orders := d.ca.Orders()
	r := ck(t, time.Minute, "cert", "renew", "--out-dir", out, "--storage", storageDir, "--force")
	if r.code != 0 || !strings.Contains(r.stdout, "renewed") {
		t.Fatalf("bare cert renew: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := d.ca.Orders() - orders; n != 1 {
		t.Errorf("the test CA got %d orders, want 1", n)
	}
	data, err := os.ReadFile(filepath.Join(out, "renewal", "wildcard_a.test.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"challenge = dns-01\n", "dns = rfc2136\n", "dns_server = " + d.named.Addr() + "\n", "tsig_key_file = /"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("settings lack %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), d.named.Secret()) {
		t.Errorf("the TSIG secret is in the renewal settings:\n%s", data)
	}
}

// TestSettingsKeysAreFlags: every renewal settings key is a flag of cert
// renew, and all but the hooks of cert issue, so a renamed flag cannot
// silently stop being remembered.
func TestSettingsKeysAreFlags(t *testing.T) {
	for _, c := range []*Command{certRenewCmd(), certIssueCmd()} {
		fs := c.FlagSet(globalFlags)
		for _, key := range renew.SettingsKeys() {
			if c.Name() == "issue" && slices.Contains(renew.HookKeys(), key) || slices.Contains(renew.StateKeys(), key) {
				continue
			}
			if fs.Lookup(renew.FlagOf(key)) == nil {
				t.Errorf("renewal setting %s: cert %s has no flag --%s", key, c.Name(), renew.FlagOf(key))
			}
		}
	}
}
