package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/dnsprovider"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/libdns/libdns"
)

// buildUserModule builds testdata/usermodule, a module whose main adds the
// nsupdate provider with cli.WithDNSProvider, as a user's would be built:
// its replace pointing at this checkout, every other module from the
// module cache (GOFLAGS=-mod=mod GOPROXY=off; go.sum starts as ours).
func buildUserModule(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "usermodule")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "usermodule"))); err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	gomod = bytes.ReplaceAll(gomod, []byte("=> ../../.."), []byte("=> "+root))
	gomod = append(gomod, indirectRequires(t, root, gomod)...)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": gomod, "go.sum": sum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(t.TempDir(), "mycertkeeper")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the user module: %v\n%s", err, out)
	}
	t.Logf("built the user module in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// indirectRequires returns a require block of every module certkeeper's
// go.mod (in root) requires that the user's gomod does not, each marked
// indirect, as go mod tidy would list them. Without them the go command
// resolves the missing ones through certkeeper's whole module graph,
// which needs go.mod files (testify's, from pgx's) that building
// certkeeper never fetched: on a fresh module cache, with GOPROXY=off,
// the build failed.
func indirectRequires(t *testing.T, root string, gomod []byte) []byte {
	t.Helper()
	ours, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	block := []byte("\nrequire (\n")
	for _, line := range strings.Split(string(ours), "\n") {
		fields := strings.Fields(line)
		if !strings.HasPrefix(line, "\t") || len(fields) < 2 || bytes.Contains(gomod, []byte("\t"+fields[0]+" ")) {
			continue
		}
		block = fmt.Appendf(block, "\t%s %s // indirect\n", fields[0], fields[1])
	}
	return append(block, ")\n"...)
}

// TestUserModuleProvider: a binary built from a user module that adds one
// DNS provider lists it and its settings in --help, refuses its secret on
// the command line and an unknown --dns naming it, and issues a wildcard
// and its apex through it against named, leaving no record behind and
// printing the secret nowhere.
func TestUserModuleProvider(t *testing.T) {
	bin := buildUserModule(t)
	run := func(args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running %s: %v", bin, err)
		}
		return r
	}

	help := run("cert", "issue", "--help")
	for _, want := range []string{"DNS providers compiled in", "nsupdate", "key_name", "secret: from a file"} {
		if help.code != 0 || !strings.Contains(help.stdout, want) {
			t.Errorf("cert issue --help: exit %d, no %q in:\n%s", help.code, want, help.stdout)
		}
	}

	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	ca := testca.Start(t, testca.Options{DNSServer: named.Addr()})
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(named.Secret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	storageDir := t.TempDir()
	issue := func(out string, dns ...string) result {
		args := append(pebbleArgs(ca, storageDir, out), "--challenge", "dns-01", "-d", "*.a.test", "-d", "a.test",
			"--dns-resolver", named.Addr(), "--dns-check-port", cmdline.PortOf(named.Addr()), "--dns-timeout", "10s", "--log-level", "debug")
		return run(append(args, dns...)...)
	}
	settings := []string{"--dns", "nsupdate", "--dns-setting", "server=" + named.Addr(),
		"--dns-setting", "key_name=" + strings.TrimSuffix(named.KeyName(), "."), "--dns-setting", "key_alg=" + named.Algorithm()}

	for _, tc := range []struct {
		name string
		dns  []string
		want string
	}{
		{"secret on the command line", append(settings[:len(settings):len(settings)], "--dns-setting", "secret="+named.Secret()), "--dns-setting-file secret=FILE"},
		{"unknown provider", []string{"--dns", "nsupdat"}, "rfc2136, powerdns, exec or nsupdate"},
		{"missing secret", settings, "--dns nsupdate needs --dns-setting-file secret=FILE"},
	} {
		r := issue(t.TempDir(), tc.dns...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
		if strings.Contains(r.stdout+r.stderr, named.Secret()) {
			t.Errorf("%s: the secret appears in the output", tc.name)
		}
	}

	out := t.TempDir()
	r := issue(out, append(settings, "--dns-setting-file", "secret="+secretFile)...)
	if r.code != 0 {
		t.Fatalf("issuing through nsupdate: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	verifyChain(t, readPair(t, out, "wildcard_a.test"), ca.IssuingRootPool(t), "x.a.test", "a.test")
	if got := named.DigTXT(t, "_acme-challenge.a.test"); got != "" {
		t.Errorf("dig TXT _acme-challenge.a.test = %q, want nothing", got)
	}
	if strings.Contains(r.stdout+r.stderr, named.Secret()) {
		t.Error("the TSIG secret appears in the output")
	}

	// The provider and its settings are remembered (the secret by its
	// file's path only): a bare cert renew renews through it.
	conf, err := os.ReadFile(filepath.Join(out, "renewal", "wildcard_a.test.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"dns = nsupdate", "dns_setting = server=" + named.Addr(), "dns_setting_file = secret=" + secretFile} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("renewal settings lack %q:\n%s", want, conf)
		}
	}
	if strings.Contains(string(conf), named.Secret()) {
		t.Error("the TSIG secret is in the renewal settings")
	}
	r = run("cert", "renew", "--out-dir", out, "--storage", storageDir, "--force")
	if r.code != 0 {
		t.Fatalf("bare cert renew through nsupdate: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	verifyChain(t, readPair(t, out, "wildcard_a.test"), ca.IssuingRootPool(t), "x.a.test", "a.test")
}

// TestDNSSettingKeys: a compiled-in provider's settings come from the
// config keys dns_setting and dns_setting_file, a flag replaces the key of
// its name, secrets are read from their files and refused as values, and
// the built-in providers take no settings.
func TestDNSSettingKeys(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "proxy.yaml")
	body := "dns: test\ndns_setting: {zone: a.test, ttl: \"60\"}\ndns_setting_file: {token: " + tokenFile + "}\n"
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := dnsConfig{Settings: map[string]string{"zone": "b.test"}}
	cfg, err := loadProxyConfig(&source{file: f, set: map[string]bool{"dns-setting": true}}, &proxyConfig{engineConfig: engineConfig{DNS: flags}})
	if err != nil {
		t.Fatal(err)
	}
	var got dnsprovider.Settings
	env := &Env{}
	opt := WithDNSProvider(dnsprovider.Provider{
		Name: "test",
		Settings: []dnsprovider.Setting{
			{Name: "zone", Required: true}, {Name: "ttl"}, {Name: "token", Secret: true, Required: true},
		},
		New: func(s dnsprovider.Settings) (dns01.Provider, error) {
			got = s
			return &nsupdateless{}, nil
		},
	})
	if err := opt(env); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.DNS.provider(env); err != nil {
		t.Fatalf("provider() = %v", err)
	}
	if want := "map[token:s3cret ttl:60 zone:b.test]"; fmt.Sprint(got) != want {
		t.Errorf("settings = %v, want %s", got, want)
	}

	for _, tc := range []struct {
		name string
		c    dnsConfig
		want string
	}{
		{"secret as a value", dnsConfig{Provider: "test", Settings: map[string]string{"zone": "a", "token": "s3cret"}}, "--dns-setting-file token=FILE"},
		{"unknown setting", dnsConfig{Provider: "test", Settings: map[string]string{"zone": "a", "tokn": "x"}}, "--dns test takes zone, ttl, token"},
		{"missing", dnsConfig{Provider: "test", Settings: map[string]string{"zone": "a"}}, "--dns test needs --dns-setting-file token=FILE"},
		{"built-in", dnsConfig{Provider: "rfc2136", Settings: map[string]string{"zone": "a"}}, "--dns rfc2136 takes no --dns-setting"},
		{"no --dns", dnsConfig{SettingFiles: map[string]string{"token": tokenFile}}, "needs --dns PROVIDER"},
		{"unknown --dns", dnsConfig{Provider: "tst"}, "use rfc2136, powerdns, exec or test"},
	} {
		_, err := tc.c.provider(env)
		var uerr *usageError
		if !errors.As(err, &uerr) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: provider() = %v, want a usage error with %q and no secret", tc.name, err, tc.want)
		}
	}
	if err := WithDNSProvider(dnsprovider.Provider{Name: "exec", New: func(dnsprovider.Settings) (dns01.Provider, error) { return nil, nil }})(env); err == nil {
		t.Error("WithDNSProvider(exec) = nil, want an error: exec is built in")
	}
}

// nsupdateless is a provider that sets nothing, for tests that stop at
// building one.
type nsupdateless struct{}

func (nsupdateless) AppendRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, nil
}

func (nsupdateless) DeleteRecords(context.Context, string, []libdns.Record) ([]libdns.Record, error) {
	return nil, nil
}
