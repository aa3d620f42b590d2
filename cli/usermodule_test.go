package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
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
	issue := func(out string, dns ...string) result {
		args := append(pebbleArgs(ca, t.TempDir(), out), "--challenge", "dns-01", "-d", "*.a.test", "-d", "a.test",
			"--dns-resolver", named.Addr(), "--dns-check-port", portOf(named.Addr()), "--dns-timeout", "10s", "--log-level", "debug")
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
}
