package cli

import (
	"flag"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/yamlconf"
)

// noGoTypes fails the test if stderr shows Go's own type names, which
// mean nothing to an operator.
func noGoTypes(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"main.", "[]string", "time.Duration", "!!str", "unmarshal", "seq into"} {
		if strings.Contains(stderr, s) {
			t.Errorf("error shows Go internals (%q):\n%s", s, stderr)
		}
	}
}

// freeLoopbackPort returns a port free on 127.0.0.1 just now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestConfigErrors starts proxy and server on config files with the
// mistakes a new user makes: each is refused at start with the file, the
// line and the key, a suggestion where there is one, and no Go type.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, text string
		want            []string
	}{
		{"typo", "proxy", "allow: [a.example]\nalow: b.example\n",
			[]string{"config.yaml:2: alow: unknown key; did you mean allow?"}},
		{"typo in names", "proxy", "allow: a.example\nnames:\n  - pattern: b.example\n    key_typ: rsa2048\n",
			[]string{"config.yaml:4: names[0].key_typ: unknown key; did you mean key_type?"}},
		{"server typo", "server", "lisen: 127.0.0.1:0\n",
			[]string{"config.yaml:1: lisen: unknown key; did you mean listen?"}},
		{"unknown CA", "proxy", "allow: a.example\nca: [lets-encrypt]\n",
			[]string{`config.yaml:2: ca[0]: "lets-encrypt" is not a CA`, "did you mean letsencrypt?"}},
		{"bad duration", "proxy", "allow: a.example\nalert_failing_for: 1 day\n",
			[]string{`config.yaml:2: alert_failing_for: "1 day": want a duration such as 7d`}},
		{"bool", "server", "self_signed_fallback: maybe\n",
			[]string{`config.yaml:1: self_signed_fallback: "maybe": want true or false`}},
		{"list for a value", "proxy", "allow: a.example\nemail: [a, b]\n",
			[]string{"config.yaml:2: email: want a single value, not a list"}},
		{"bad backend", "proxy", "allow: a.example\nbackend: ftp://127.0.0.1:21\n",
			[]string{`config.yaml:2: backend: backend "ftp://127.0.0.1:21": scheme "ftp" is not http or https`}},
		{"log level", "proxy", "allow: a.example\nlog_level: loud\n",
			[]string{`config.yaml:2: log_level: "loud": use debug, info, warn or error`}},
		{"email", "proxy", "allow: a.example\nemail: mailto:ops@a.example\n",
			[]string{`config.yaml:2: email: "mailto:ops@a.example": not an email address: want one such as you@a.example`}},
		{"alert webhook", "proxy", "allow: a.example\nalert_webhook: hooks.a.example/SECRET\n",
			[]string{`config.yaml:2: alert_webhook: not an http or https URL (scheme ""): give one such as https://hooks.a.example/certkeeper`}},
		{"PROXY protocol source", "server", "allow: a.example\nproxy_protocol_from: [10.0.0.0/8, 10.0.0.0/33]\n",
			[]string{`config.yaml:2: proxy_protocol_from[1]: "10.0.0.0/33": want an address or a CIDR prefix, e.g. 10.0.0.0/8`}},
		{"duplicate", "proxy", "allow: a.example\nallow: b.example\n",
			[]string{"config.yaml:2: allow: given twice (first on line 1)"}},
		{"not YAML", "proxy", "allow: [a.example\n",
			[]string{"config.yaml:1: did not find expected ',' or ']' (not valid YAML)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeConfig(t, tc.text)
			addr := "--tls-addr" // nothing must start listening on a fixed port
			if tc.cmd == "server" {
				addr = "--listen"
			}
			r := ck(t, 30*time.Second, tc.cmd, "--config", file, "--storage", t.TempDir(), addr, "127.0.0.1:0")
			if r.code == 0 {
				t.Fatalf("exit 0, want a refusal\nstderr:\n%s", r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			noGoTypes(t, r.stderr)
		})
	}
}

// TestCAFlagChecked: an unknown CA name on the command line is refused
// when the flags are parsed (exit 2), by every command that takes --ca, as
// in the file, not taken for a URL that fails at the first handshake or
// at the CA (a trial: cert issue and doctor failed with URL parse errors).
func TestCAFlagChecked(t *testing.T) {
	for _, args := range [][]string{
		{"proxy", "--allow", "a.example", "--storage", t.TempDir(), "--tls-addr", "127.0.0.1:0"},
		{"cert", "issue", "-d", "a.example", "--storage", t.TempDir()},
		{"doctor", "-d", "a.example"},
		{"account", "show", "--storage", t.TempDir()},
	} {
		r := ck(t, 30*time.Second, append(args, "--ca", "lets-encrypt")...)
		if r.code != 2 || !strings.Contains(r.stderr, `invalid value "lets-encrypt" for --ca: "lets-encrypt" is not a CA`) ||
			!strings.Contains(r.stderr, "did you mean letsencrypt?") {
			t.Errorf("%s --ca lets-encrypt: exit %d, stderr:\n%s", strings.Join(args[:2], " "), r.code, r.stderr)
		}
	}
}

// TestLocalCAFlagsRefused: --profile and the EAB flags with the local CA
// alone are refused, naming them: it has neither, and a trial's
// --check-config said "configuration OK" for both.
func TestLocalCAFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"proxy", "--check-config", "--allow", "a.test", "--ca", "local", "--profile", "tlsserver"},
		{"server", "--check-config", "--no-auth", "--ca", "local", "--eab-kid", "kid", "--eab-hmac", "aG1hYw"},
		{"cert", "issue", "-d", "a.test", "--ca", "local", "--profile", "tlsserver", "--storage", t.TempDir(), "--out-dir", t.TempDir()},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "--profile, --eab-kid and --eab-hmac apply to an ACME CA") {
			t.Errorf("%s: exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// An email that is none is refused with the local CA too: cert issue
	// remembered it, and cert renew from an ACME CA failed on it later
	// (docs trial).
	for _, args := range [][]string{
		{"cert", "issue", "-d", "a.test", "--ca", "local", "--email", "noat", "--storage", t.TempDir(), "--out-dir", t.TempDir()},
		{"proxy", "--check-config", "--allow", "a.test", "--ca", "local", "--email", "mailto:ops@a.example"},
	} {
		if r := ck(t, 30*time.Second, args...); r.code == 0 || !strings.Contains(r.stderr, "not an email address") {
			t.Errorf("%s: exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// TestKeyTypeOtherName: another tool's name for a key type (lego's
// ec256) is said as ours by proxy and server, as cert issue says it
// (docs/cli.md promises the note).
func TestKeyTypeOtherName(t *testing.T) {
	for _, cmd := range [][]string{{"proxy", "--allow", "a.test"}, {"server", "--no-auth"}} {
		r := ck(t, 30*time.Second, append(cmd, "--check-config", "--ca", "local", "--key-type", "ec256", "--storage", t.TempDir())...)
		if r.code != 0 || !strings.Contains(r.stderr, "--key-type ec256 is ecdsa-p256") {
			t.Errorf("%s --key-type ec256: exit %d, stderr:\n%s", cmd[0], r.code, r.stderr)
		}
	}
}

// TestProxyUnknownProfile: a profile the CA does not offer stops the
// proxy at start, naming --profile and the profiles offered, instead of
// failing every order (a trial's typo passed the start); exit 2, as for
// --profile with the local CA, which has none.
func TestProxyUnknownProfile(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	r := ck(t, time.Minute, "proxy", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(), "--profile", "nosuchprofile",
		"--allow", "a.test", "--storage", t.TempDir(), "--tls-addr", "127.0.0.1:0")
	if r.code != 2 || !strings.Contains(r.stderr, `--profile: unknown profile "nosuchprofile"`) || !strings.Contains(r.stderr, "offers: default") {
		t.Errorf("proxy --profile nosuchprofile: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// --check-config says so too (a fleet trial's passed it, warning that
	// the CA gave no answer: "Issuer.Storage is nil"), and says nothing
	// of a profile the CA offers.
	for profile, want := range map[string]int{"nosuchprofile": 1, "default": 0} {
		r := ck(t, time.Minute, "server", "--check-config", "--no-auth", "--ca", ca.DirectoryURL(), "--ca-roots", ca.ListenerRootFile(),
			"--profile", profile, "--allow", "a.test", "--storage", t.TempDir())
		if r.code != want || strings.Contains(r.stderr, "no answer") || want == 1 && !strings.Contains(r.stderr, `--profile: unknown profile "nosuchprofile"`) {
			t.Errorf("server --check-config --profile %s: exit %d, want %d, stderr:\n%s", profile, r.code, want, r.stderr)
		}
	}
}

// TestConfigSecretsReadable: a --config file other users can read that
// holds a token, or a storage URL with a password, is warned about at
// start and by --check-config, naming the keys (never the values) and
// chmod 600; at mode 0600, at 0640 in the command's own group (the
// systemd unit's install -m 0640 -g certkeeper), or holding no secret, it
// is not.
func TestConfigSecretsReadable(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes say nothing of other users on Windows")
	}
	const warning = "is readable by"
	for _, tt := range []struct {
		cmd, yaml string
		mode      os.FileMode
		want      string // "" for no warning
	}{
		{"proxy", "allow: a.example\nmetrics_token: mtok-0123456789abcdef\n", 0o644, "readable by other users (mode 0644) and holds metrics_token: chmod 600"},
		{"server", "allow: a.example\nno_auth: true\nstorage: redis://:s3cret@127.0.0.1:1/0\nstatus_token: stok-0123456789abcdef\n", 0o604,
			"holds status_token, storage: chmod 600"},
		{"proxy", "allow: a.example\nmetrics_token: mtok-0123456789abcdef\n", 0o600, ""},
		{"proxy", "allow: a.example\nmetrics_token: mtok-0123456789abcdef\n", 0o640, ""},
		{"proxy", "allow: a.example\nstorage: postgres://ck@127.0.0.1:1/ck\n", 0o644, ""},
	} {
		f := writeConfig(t, tt.yaml)
		if err := os.Chmod(f, tt.mode); err != nil {
			t.Fatal(err)
		}
		r := ck(t, 30*time.Second, tt.cmd, "--check-config", "--config", f)
		if r.code != 0 {
			t.Errorf("%s %q at %04o: exit %d\n%s", tt.cmd, tt.yaml, tt.mode, r.code, r.stderr)
			continue
		}
		if got := strings.Contains(r.stderr, warning); got != (tt.want != "") || !strings.Contains(r.stderr, tt.want) ||
			strings.Contains(r.stderr, "s3cret") || strings.Contains(r.stderr, "tok-0123") {
			t.Errorf("%s %q at %04o: stderr %q; want a warning with %q: %v, and no secret", tt.cmd, tt.yaml, tt.mode, r.stderr, tt.want, tt.want != "")
		}
	}
}

// TestEmailChecked: an --email that is no address is bad usage, named
// before anything is sent to the CA (nothing listens at the --ca given).
func TestEmailChecked(t *testing.T) {
	for _, args := range [][]string{
		{"cert", "issue", "-d", "a.example", "--ca", "https://127.0.0.1:1/dir", "--storage", t.TempDir(), "--out-dir", t.TempDir(), "--email", "notanemail"},
		{"account", "register", "--agree-tos", "--ca", "https://127.0.0.1:1/dir", "--storage", t.TempDir(), "--email", "Ops <ops@a.example>"},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "not an email address: want one such as you@a.example") || strings.Contains(r.stderr, "127.0.0.1:1") {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant 2 saying the email is not one, before contacting the CA", args, r.code, r.stderr)
		}
	}
}

// TestAlertWebhookChecked: an --alert-webhook that cannot be posted to
// stops the start (it failed at the first alert, weeks later), without
// quoting the URL, whose path may be the secret.
func TestAlertWebhookChecked(t *testing.T) {
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--allow", "a.example", "--alert-webhook", "ftp://hooks.a.example/SECRET")
	if r.code != 1 || !strings.Contains(r.stderr, `--alert-webhook: not an http or https URL (scheme "ftp")`) || strings.Contains(r.stderr, "SECRET") {
		t.Errorf("--alert-webhook ftp://...: exit %d, stderr:\n%s\nwant the configuration refused naming the flag, not the URL", r.code, r.stderr)
	}
}

// TestSecretFlagsWarned: a token given as a flag to a long-running command
// is warned about (other users read it with ps for as long as it runs),
// naming the flag and the config key to use, never the value; the same
// token in a 0600 --config file is not.
func TestSecretFlagsWarned(t *testing.T) {
	const warning = "on the command line can be read by other users of this host (ps)"
	r := ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--metrics-token", "mtok-0123456789abcdef", "--status-token", "stok-0123456789abcdef")
	if r.code != 0 || strings.Count(r.stderr, warning) != 2 || !strings.Contains(r.stderr, "warning: --metrics-token "+warning) ||
		!strings.Contains(r.stderr, "put status_token in a --config file only you can read (chmod 600)") || strings.Contains(r.stderr, "tok-0123") {
		t.Errorf("server --metrics-token --status-token: exit %d, stderr:\n%s\nwant two warnings naming the flags and keys, no token", r.code, r.stderr)
	}
	// An alert webhook's URL often carries its token (Slack, Teams).
	hook := "https://hooks.example/services/T000/B000/XXXXSECRET"
	r = ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--alert-webhook", hook)
	if r.code != 0 || !strings.Contains(r.stderr, "warning: --alert-webhook "+warning) || strings.Contains(r.stderr, "XXXXSECRET") {
		t.Errorf("server --alert-webhook: exit %d, stderr:\n%s\nwant the warning, not the URL", r.code, r.stderr)
	}
	// A secret with a file flag of its own: that flag first (a user trial
	// was told only of --config).
	r = ck(t, 30*time.Second, "proxy", "--check-config", "--allow", "a.example", "--dns", "rfc2136", "--dns-server", "127.0.0.1:1",
		"--tsig-key", "certkeeper:hmac-sha256:c2VjcmV0LXNlY3JldA==")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: --tsig-key "+warning) || strings.Contains(r.stderr, "c2VjcmV0LXNlY3JldA") ||
		!strings.Contains(r.stderr, "give it in a file with --tsig-key-file (or put tsig_key in a --config file only you can read, chmod 600)") {
		t.Errorf("proxy --tsig-key: exit %d, stderr:\n%s\nwant the warning pointing at --tsig-key-file, not the key", r.code, r.stderr)
	}
	// A Redis password in --storage (a second trial), but not in the
	// environment, which other users cannot read; the same for a token.
	const storageWarning = "warning: --storage on the command line holds a password, which other users of this host can read (ps)"
	r = ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--storage", "redis://:s3cretpw@127.0.0.1:1/0")
	if r.code != 0 || !strings.Contains(r.stderr, storageWarning) || strings.Contains(r.stderr, "s3cretpw") {
		t.Errorf("server --storage redis://:PASSWORD@...: exit %d, stderr:\n%s\nwant the warning, not the password", r.code, r.stderr)
	}
	t.Setenv("CERTKEEPER_STORAGE", "redis://:s3cretpw@127.0.0.1:1/0")
	t.Setenv("CERTKEEPER_STATUS_TOKEN", "stok-0123456789abcdef")
	if r := ck(t, 30*time.Second, "server", "--check-config", "--no-auth"); r.code != 0 || strings.Contains(r.stderr, storageWarning) || strings.Contains(r.stderr, warning) {
		t.Errorf("the storage password and a token in the environment: exit %d, stderr:\n%s\nwant no warning", r.code, r.stderr)
	}
	t.Setenv("CERTKEEPER_STORAGE", "")
	t.Setenv("CERTKEEPER_STATUS_TOKEN", "")
	f := writeConfig(t, "metrics_token: mtok-0123456789abcdef\nno_auth: true\n")
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ck(t, 30*time.Second, "server", "--check-config", "--config", f); r.code != 0 || strings.Contains(r.stderr, warning) {
		t.Errorf("metrics_token in a 0600 --config: exit %d, stderr:\n%s\nwant no warning", r.code, r.stderr)
	}
}

// TestCheckConfig: --check-config says "configuration OK" and exits 0 for
// a good configuration (a scalar for a list, days in durations, a
// host:port backend, log keys), and prints every error of a bad one.
func TestCheckConfig(t *testing.T) {
	good := writeConfig(t, `allow: a.example
alert_failing_for: 1d
alert_expiring_within: 2d12h
cert_file_check_every: 10s
issue_timeout: 45s
backend: 127.0.0.1:8080
route: b.example=127.0.0.1:8081
ca: letsencrypt
challenge: tls-alpn-01
log_level: debug
log_format: json
storage: redis://127.0.0.1:1/0
order_limit: ""
key_type: ""
`)
	for _, args := range [][]string{
		{"proxy", "--check-config", "--config", good},
		{"proxy", "--check-config", "--allow", "a.example", "--backend", "127.0.0.1:8080", "--alert-failing-for", "7d"},
		{"server", "--check-config", "--config", writeConfig(t, "allow: a.example\nissue_timeout: 1m\nalert_check_every: 1d\nmanaged: a.example\nno_auth: true\n")},
	} {
		r := ck(t, 30*time.Second, args...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "configuration OK" {
			t.Errorf("%s: exit %d, stdout %q, stderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
	}

	bad := writeConfig(t, `allow: a.example
alow: b.example
ca: [letsencrypt, lets-encrypt]
storage: redis://127.0.0.1:1/notanumber
names:
  - pattern: c.example
    challenge: http-1
`)
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", bad)
	if r.code == 0 || strings.Contains(r.stdout, "configuration OK") {
		t.Fatalf("bad config: exit %d, stdout %q", r.code, r.stdout)
	}
	for _, w := range []string{"config.yaml:2: alow:", "config.yaml:3: ca[1]:", "config.yaml:4: storage:",
		"config.yaml:7: names[0].challenge: \"http-1\"", "did you mean http-01?", "the configuration has 4 errors"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
	noGoTypes(t, r.stderr)

	// Flags are checked too, and so are the listeners' rules: a server
	// beyond loopback without authentication. Nothing listens. Every
	// setting's mistake is listed at once (a trial took three runs to
	// see three). (A --ca typo is refused as the flags are parsed.)
	port := freeLoopbackPort(t)
	certFile := filepath.Join(t.TempDir(), "missing.pem") + ":" + filepath.Join(t.TempDir(), "missing.key")
	r = ck(t, 30*time.Second, "server", "--check-config", "--listen", "0.0.0.0:"+strconv.Itoa(port), "--key-type", "rsa9",
		"--order-limit", "ten/1m", "--cert-file", certFile)
	if r.code == 0 {
		t.Fatalf("bad server flags: exit 0\n%s", r.stdout)
	}
	for _, w := range []string{"--listen 0.0.0.0:", "beyond loopback", "--key-type", "--order-limit", "--cert-file " + certFile, "the configuration has 4 errors"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

// TestConfigLogKeys: log_format and log_level in the file apply as their
// flags do (the flags win).
func TestConfigLogKeys(t *testing.T) {
	file := writeConfig(t, "log_format: json\nallow: a.example\nmetrics_addr: 0.0.0.0:1\n")
	r := ck(t, 30*time.Second, "proxy", "--config", file, "--storage", t.TempDir())
	if r.code == 0 || !strings.HasPrefix(r.stderr, "{") || !strings.Contains(r.stderr, "--metrics-addr") {
		t.Errorf("log_format json: exit %d, want the error as a JSON line:\n%s", r.code, r.stderr)
	}
	r = ck(t, 30*time.Second, "proxy", "--config", file, "--storage", t.TempDir(), "--log-format", "text")
	if r.code == 0 || strings.HasPrefix(r.stderr, "{") {
		t.Errorf("--log-format text over log_format json: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestBackendHostPort: a backend given as HOST:PORT, in the file and as a
// flag, means http://HOST:PORT; requests reach it through the proxy.
func TestBackendHostPort(t *testing.T) {
	be := newBackend(t, "hello from host:port")
	hostPort := strings.TrimPrefix(be.url, "http://")
	storageDir := t.TempDir()
	r := ck(t, 30*time.Second, "ca", "root", "--storage", storageDir)
	if r.code != 0 {
		t.Fatalf("ca root: exit %d\n%s", r.code, r.stderr)
	}
	roots := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(roots, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args func(port int) []string
	}{
		{"config", func(port int) []string {
			return []string{"--config", writeConfig(t, "ca: local\nallow: localhost\nbackend: "+hostPort+
				"\ntls_addr: 127.0.0.1:"+strconv.Itoa(port)+"\nstorage: "+storageDir+"\n")}
		}},
		{"flag", func(port int) []string {
			return []string{"--ca", "local", "--allow", "localhost", "--backend", hostPort,
				"--tls-addr", "127.0.0.1:" + strconv.Itoa(port), "--storage", storageDir}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freeLoopbackPort(t)
			startProxy(t, tc.args(port)...)
			if body, _ := curl(t, roots, "localhost", port); body != "hello from host:port" {
				t.Errorf("body through the proxy = %q, want the backend's", body)
			}
		})
	}
}

// TestConfigDocKeys: docs/config.md documents every config key of proxy
// and server, and no key they lack ("every flag has a key" stays true).
func TestConfigDocKeys(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "config.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	keyLine := regexp.MustCompile(`^\s*(?:- )?([a-z0-9_]+):`)
	inYAML := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "```yaml"):
			inYAML = true
		case strings.HasPrefix(line, "```"):
			inYAML = false
		case inYAML:
			if m := keyLine.FindStringSubmatch(line); m != nil {
				documented[m[1]] = true
			}
		}
	}
	known := map[string]bool{}
	for _, typ := range []reflect.Type{reflect.TypeOf(proxyConfig{}), reflect.TypeOf(serverConfig{}), reflect.TypeOf(nameConfig{})} {
		for _, k := range yamlconf.Keys(typ) {
			known[k] = true
			if !documented[k] {
				t.Errorf("config key %s is not in docs/config.md", k)
			}
		}
	}
	for k := range documented {
		if !known[k] {
			t.Errorf("docs/config.md documents %s, which no config takes", k)
		}
	}
	// Every flag of proxy and server, global ones included, has a key.
	for _, cmd := range []*Command{proxyCmd(), serverCmd()} {
		fs := flag.NewFlagSet(cmd.FullName(), flag.ContinueOnError)
		globalFlags(fs)
		cmd.Flags(fs)
		aliases := map[string]string{}
		for _, typ := range []reflect.Type{reflect.TypeOf(proxyConfig{}), reflect.TypeOf(serverConfig{})} {
			maps.Copy(aliases, yamlconf.Aliases(typ))
		}
		fs.VisitAll(func(f *flag.Flag) {
			k := strings.ReplaceAll(f.Name, "-", "_")
			if newName := cmdline.AliasOf(f); newName != "" {
				// A deprecated flag keeps its old key, as an alias of the new.
				if to := strings.ReplaceAll(newName, "-", "_"); aliases[k] != to {
					t.Errorf("%s --%s (deprecated for --%s) has no config key alias %s of %s", cmd.FullName(), f.Name, newName, k, to)
				}
				return
			}
			if f.Name != "config" && f.Name != "check-config" && !known[k] {
				t.Errorf("%s --%s has no config key %s", cmd.FullName(), f.Name, k)
			}
		})
	}
}

// TestCheckConfigAllowOnce: --check-config reports each bad --allow
// pattern once, on a line of its own that names the flag and the pattern
// (the proxy checked the policy twice, and a second bad pattern's line
// lacked the flag).
func TestCheckConfigAllowOnce(t *testing.T) {
	for _, cmd := range []string{"proxy", "server"} {
		args := []string{cmd, "--check-config", "--storage", t.TempDir(), "--allow", "a..example", "--allow", "re:("}
		if cmd == "server" {
			args = append(args, "--no-auth")
		}
		r := ck(t, 30*time.Second, args...)
		if r.code == 0 {
			t.Fatalf("%s: exit 0, want a refusal\n%s", cmd, r.stdout)
		}
		for _, w := range []string{`--allow "a..example": empty label`, `--allow "re:(": error parsing regexp`} {
			if n := strings.Count(r.stderr, w); n != 1 {
				t.Errorf("%s: stderr has %q %d times, want once:\n%s", cmd, w, n, r.stderr)
			}
		}
		if !strings.Contains(r.stderr, "the configuration has 2 errors") {
			t.Errorf("%s: stderr lacks the count of 2 errors:\n%s", cmd, r.stderr)
		}
	}
}

// TestCheckConfigNoPolicy: --check-config without --allow or --ask says
// what the configuration will do: the proxy's development mode serves
// localhost only; otherwise no name gets a certificate on demand, and
// what is served is named (stored certificates, --managed names).
func TestCheckConfigNoPolicy(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"proxy"}, []string{"development mode", "https://localhost:8443/", "give --allow", trustLine()}},
		{[]string{"proxy", "--ca", "local"}, []string{"no --allow or --ask", "no name gets a certificate on demand", "already in --storage"}},
		{[]string{"server", "--ca", "local", "--managed", "a.test", "--no-auth"}, []string{"no --allow or --ask", "the --managed names"}},
		{[]string{"proxy", "--config", writeConfig(t, "ca: local\nnames:\n  - pattern: '*.a.test'\n    key_type: rsa2048\n")},
			[]string{"no name gets a certificate on demand", "names entries say how a name is obtained, not which names may be"}},
	} {
		args := append(tc.args, "--check-config", "--storage", t.TempDir())
		r := ck(t, 30*time.Second, args...)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "configuration OK" {
			t.Errorf("%s: exit %d, stdout %q, want configuration OK\n%s", args, r.code, r.stdout, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", args, w, r.stderr)
			}
		}
	}
}

// trustLine is how development mode's banner tells this user to trust
// the local CA: root is not told to use sudo.
func trustLine() string {
	if os.Geteuid() == 0 || runtime.GOOS == "windows" {
		return "on this machine with: certkeeper ca trust --storage"
	}
	return "on this machine with: sudo certkeeper ca trust --storage"
}

// TestAllowURL: a URL or HOST:PORT given to --allow (or allow in the
// file) is refused with the host name to give instead.
func TestAllowURL(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--allow", "https://a.example"}, `--allow "https://a.example": give the host name alone: a.example`},
		{[]string{"server", "--no-auth", "--allow", "a.example:443"}, `--allow "a.example:443": give the host name alone: a.example`},
		{[]string{"proxy", "--config", writeConfig(t, "allow: [b.example, 'https://a.example/']\n")},
			`config.yaml:1: allow[1]: allowlist pattern "https://a.example/": give the host name alone: a.example`},
	} {
		args := append(tc.args, "--check-config", "--storage", t.TempDir())
		r := ck(t, 30*time.Second, args...)
		if r.code == 0 || strings.Count(r.stderr, tc.want) != 1 {
			t.Errorf("%s: exit %d, want 1 line %q in stderr:\n%s", args, r.code, tc.want, r.stderr)
		}
	}
}

// TestRouteAsSettings: a config file's route given as NAME: URL settings
// is refused with the documented form to write instead.
func TestRouteAsSettings(t *testing.T) {
	file := writeConfig(t, "allow: a.example\nroute:\n  a.example: 127.0.0.1:8080\n")
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", file)
	want := `config.yaml:3: route: want a list of NAME=URL items, not NAME: URL settings: write route: ["a.example=127.0.0.1:8080"]`
	if r.code == 0 || !strings.Contains(r.stderr, want) {
		t.Errorf("exit %d, stderr lacks %q:\n%s", r.code, want, r.stderr)
	}
}

// TestAllowNotPublic: with Let's Encrypt, --allow patterns it never
// issues for (localhost, *.internal, private addresses, single labels)
// are warned of, at start and by --check-config, but not refused.
func TestAllowNotPublic(t *testing.T) {
	args := []string{"--ca", "staging", "--email", "a@example.com", "--allow", "localhost", "--allow", "*.corp.internal",
		"--allow", "10.0.0.1", "--allow", "www.example.com", "--storage", t.TempDir()}
	wants := []string{"--allow localhost: Let's Encrypt cannot issue for it", "--allow *.corp.internal: Let's Encrypt cannot issue for it",
		"--allow 10.0.0.1: Let's Encrypt cannot issue for it", "give --ca local"}
	r := ck(t, 30*time.Second, append([]string{"proxy", "--check-config"}, args...)...)
	p := startLogged(t, binary, "server listening", append([]string{"server", "--no-auth", "--listen", "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))}, args...)...)
	for what, out := range map[string]string{"proxy --check-config": r.stderr, "server": p.output()} {
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", what, w, out)
			}
		}
		if strings.Contains(out, "--allow www.example.com") {
			t.Errorf("%s: a public name is warned of:\n%s", what, out)
		}
	}
	if r.code != 0 {
		t.Errorf("proxy --check-config: exit %d, want 0 (a warning, not a refusal):\n%s", r.code, r.stderr)
	}
	r = ck(t, 30*time.Second, "proxy", "--check-config", "--ca", "local", "--allow", "localhost", "--storage", t.TempDir())
	if strings.Contains(r.stderr, "cannot issue") {
		t.Errorf("--ca local: warned of localhost:\n%s", r.stderr)
	}
}

// TestCertFileUnreadable: a --cert-file whose files cannot be read is
// refused by --check-config and at start; the proxy started, and then
// failed every handshake (the Manager's lazy init failed) without a word.
func TestCertFileUnreadable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "a.pem") + ":" + filepath.Join(t.TempDir(), "a.key")
	for _, args := range [][]string{
		{"proxy", "--check-config"},
		{"proxy", "--tls-addr", "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))},
		{"server", "--no-auth", "--listen", "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))},
	} {
		args = append(args, "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(), "--cert-file", missing)
		r := ck(t, 30*time.Second, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "--cert-file "+missing+": ") || !strings.Contains(r.stderr, "no such file") {
			t.Errorf("%s: exit %d, want a refusal naming --cert-file and the missing file:\n%s", args, r.code, r.stderr)
		}
	}
}

// TestAskURLChecked: an --ask (or ask in the file) that is not an http or
// https URL is refused at start and by --check-config; it was accepted,
// and then every name was refused at its first handshake.
func TestAskURLChecked(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "--check-config", "--ask", "127.0.0.1:9000/allowed"}, "--ask: ask URL 127.0.0.1:9000/allowed: not an absolute http or https URL (e.g. --ask http://"},
		{[]string{"server", "--no-auth", "--listen", "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t)), "--ask", "ftp://ask.example/"}, "--ask: ask URL ftp://ask.example/: not an absolute http or https URL"},
		{[]string{"proxy", "--check-config", "--config", writeConfig(t, "ask: ftp://ask.example/\n")}, "config.yaml:1: ask: ask URL ftp://ask.example/: not an absolute"},
	} {
		args := append(tc.args, "--ca", "local", "--storage", t.TempDir())
		r := ck(t, 30*time.Second, args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr lacks %q:\n%s", args, r.code, tc.want, r.stderr)
		}
	}
}

// TestManagedChecked: an invalid --managed name is refused at start and
// by --check-config (the server retried it forever), and with Let's
// Encrypt one it never issues for is warned of.
func TestManagedChecked(t *testing.T) {
	for _, args := range [][]string{
		{"server", "--check-config", "--no-auth"},
		{"server", "--no-auth", "--listen", "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t))},
	} {
		args = append(args, "--ca", "local", "--allow", "a.test", "--storage", t.TempDir(), "--managed", "a.test,b..test")
		r := ck(t, 30*time.Second, args...)
		if want := `--managed a.test,b..test: invalid name "b..test": empty label`; r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: exit %d, stderr lacks %q:\n%s", args, r.code, want, r.stderr)
		}
	}
	r := ck(t, 30*time.Second, "server", "--check-config", "--no-auth", "--ca", "staging", "--email", "a@example.com", "--storage", t.TempDir(),
		"--managed", "www.example.com,intranet")
	if want := "--managed intranet: Let's Encrypt cannot issue for it"; r.code != 0 || !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "--managed www") {
		t.Errorf("exit %d, want 0 and a warning %q for intranet alone:\n%s", r.code, want, r.stderr)
	}
}

// TestDefaultNameAndRouteHost: an invalid --default-name is refused at
// start and by --check-config (clients without SNI got a handshake
// error), and a URL or HOST:PORT as a --default-name or a --route's name
// says which host name to give.
func TestDefaultNameAndRouteHost(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--check-config", "--default-name", "a..test"}, `--default-name: invalid name "a..test": empty label`},
		{[]string{"--tls-addr", "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t)), "--default-name", "https://a.test/"},
			`--default-name: invalid name "https://a.test/": give the host name alone: a.test`},
		{[]string{"--check-config", "--route", "a.test:443=127.0.0.1:8080"}, `give the host name alone: a.test`},
		// Every bad route and backend at once, each naming its flag.
		{[]string{"--check-config", "--route", "b.test=", "--route", "c.test", "--backend", "ftp://x"},
			"--route: route \"b.test\": backend: empty URL\n--route: route \"c.test\": want NAME=URL, as in b.test=http://127.0.0.1:8081\n--backend: backend \"ftp://x\""},
	} {
		args := append(append([]string{"proxy"}, tc.args...), "--ca", "local", "--allow", "a.test", "--storage", t.TempDir())
		r := ck(t, 30*time.Second, args...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr lacks %q:\n%s", args, r.code, tc.want, r.stderr)
		}
	}
}

// TestIssueTimeoutRange: the proxy's --issue-timeout is refused outside
// 1s to 5m (0 read as "no limit", a value past the issuance's own limit),
// and its config key is read.
func TestIssueTimeoutRange(t *testing.T) {
	for _, v := range []string{"0", "10m"} {
		r := ck(t, 30*time.Second, "proxy", "--check-config", "--allow", "a.test", "--ca", "local", "--storage", t.TempDir(), "--issue-timeout", v)
		if r.code != 1 || !strings.Contains(r.stderr, "want 1s to 5m") {
			t.Errorf("--issue-timeout %s: exit %d, stderr:\n%s", v, r.code, r.stderr)
		}
	}
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", writeConfig(t, "allow: a.test\nca: local\nissue_timeout: 1ms\n"), "--storage", t.TempDir())
	if r.code != 1 || !strings.Contains(r.stderr, "--issue-timeout 1ms") {
		t.Errorf("issue_timeout: 1ms: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestCheckConfigSecretFiles: --check-config reads --storage-key-file and
// --storage-password-file as the start does: a key file others may read,
// refused at start, failed the start after passing the check (a container
// trial), and so did a key file that holds no key.
func TestCheckConfigSecretFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile, garbage := filepath.Join(dir, "storage.key"), filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(keyFile, []byte(ck(t, 10*time.Second, "storage", "keygen").stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(garbage, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"proxy", "--check-config", "--allow", "a.test", "--ca", "local", "--backend", "127.0.0.1:8080", "--storage", filepath.Join(dir, "st")}
	if r := ck(t, 30*time.Second, append(base, "--storage-key-file", keyFile)...); r.code != 0 || strings.TrimSpace(r.stdout) != "configuration OK" {
		t.Errorf("a good key file: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--storage-key-file", keyFile}, "chmod 600 " + keyFile},
		{[]string{"--storage-key-file", garbage}, "--storage-key-file: storage key file " + garbage},
		{[]string{"--storage-password-file", garbage}, "--storage-password-file is for a postgres:// --storage"},
	} {
		r := ck(t, 30*time.Second, append(base, tt.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stdout, "configuration OK") {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 1 and %q", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
}

// TestFlagsFromEnvironment: a container's CERTKEEPER_ variables give the
// flags (the command line wins, the config file loses), the summary and
// errors name the variable, and --check-config reads them too.
func TestFlagsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "allow: file.example\nbackend: 127.0.0.1:8081\n")
	t.Setenv("CERTKEEPER_ALLOW", "a.test  *.b.test")
	t.Setenv("CERTKEEPER_CA", "local")
	t.Setenv("CERTKEEPER_STORAGE", filepath.Join(dir, "st"))
	t.Setenv("CERTKEEPER_BACKEND", "127.0.0.1:8080")
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--config", cfg, "--backend", "127.0.0.1:8082")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "configuration OK" {
		t.Fatalf("--check-config with the environment: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"allow in " + cfg + " is overridden by $CERTKEEPER_ALLOW in the environment",
		"backend in " + cfg + " is overridden by --backend on the command line"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	_, logs := startProxyAt(t, binary, "--tls-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	if want := "names:      any name matching a.test, *.b.test ($CERTKEEPER_ALLOW)"; !strings.Contains(logs(), want) {
		t.Errorf("the start-up summary lacks %q:\n%s", want, logs())
	}
	t.Setenv("CERTKEEPER_MAX_CONNS", "lots")
	r = ck(t, 30*time.Second, "proxy", "--check-config")
	if r.code != 2 || !strings.Contains(r.stderr, `$CERTKEEPER_MAX_CONNS: invalid value "lots" for --max-conns`) {
		t.Errorf("a bad variable: exit %d, stderr:\n%s\nwant exit 2 naming the variable", r.code, r.stderr)
	}
	t.Setenv("CERTKEEPER_MAX_CONNS", "")
	t.Setenv("CERTKEEPER_ALLOW", "bad!name")
	r = ck(t, 30*time.Second, "proxy", "--check-config")
	if r.code == 0 || !strings.Contains(r.stderr, "--allow is $CERTKEEPER_ALLOW") {
		t.Errorf("a bad --allow from the environment: exit %d, stderr:\n%s\nwant it named", r.code, r.stderr)
	}
	// A deploy hook's CERTKEEPER_CERT_FILE is not --cert-file.
	t.Setenv("CERTKEEPER_ALLOW", "")
	t.Setenv("CERTKEEPER_CERT_FILE", filepath.Join(dir, "cert.pem"))
	if r := ck(t, 30*time.Second, "status"); r.code != 0 || strings.Contains(r.stderr, "cert-file") { // on $CERTKEEPER_STORAGE, the proxy's
		t.Errorf("status in a deploy hook: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// TestChildEnvReserved: every CERTKEEPER_ variable certkeeper sets for a
// command it runs is one FromEnv does not read (childEnv), so that a hook
// running certkeeper does not take it as a flag.
func TestChildEnvReserved(t *testing.T) {
	set := regexp.MustCompile(`"(CERTKEEPER_[A-Z0-9_]+)=`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "testdata" || d.Name() == "bench") {
			if err == nil {
				err = filepath.SkipDir
			}
			return err
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.Contains(path, "internal/test") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range set.FindAllStringSubmatch(string(data), -1) {
			if !slices.Contains(childEnv(), m[1]) {
				t.Errorf("%s sets %s for a command it runs, and childEnv does not reserve it", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
