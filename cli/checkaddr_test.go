package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCheckConfigListenAddrs: --check-config of proxy and server checks
// the syntax of every listen address, flag or config key, naming it, and
// opens nothing; start refuses the same address with the same message
// before it opens storage, instead of failing at its listener.
func TestCheckConfigListenAddrs(t *testing.T) {
	const (
		badPort    = ": port out of range"
		noPort     = ": missing port in address"
		badService = `: unknown port "http-ish"`
	)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"proxy", "--tls-addr", "localhost", "--http-addr", ":http-ish", "--metrics-addr", "foo", "--status-addr", "127.0.0.1:99999"},
			[]string{"--tls-addr localhost" + noPort, "--http-addr :http-ish" + badService, "--metrics-addr foo" + noPort,
				"--status-addr 127.0.0.1:99999" + badPort, "the configuration has 4 errors"}},
		{[]string{"server", "--listen", "127.0.0.1:99999", "--tls-alpn-addr", "localhost", "--http-addr", ":http-ish", "--metrics-addr", "foo"},
			[]string{"--listen 127.0.0.1:99999" + badPort, "--tls-alpn-addr localhost" + noPort, "--http-addr :http-ish" + badService,
				"--metrics-addr foo" + noPort, "the configuration has 4 errors"}},
		{[]string{"server", "--config", writeConfig(t, "allow: a.example\nlisten: 127.0.0.1:99999\ntls_addr: localhost\nstatus_addr: ':http-ish'\n")},
			[]string{`config.yaml:2: listen: "127.0.0.1:99999"` + badPort, `config.yaml:3: tls_alpn_addr: "localhost"` + noPort,
				`config.yaml:4: status_addr: ":http-ish"` + badService, "the configuration has 3 errors"}},
		{[]string{"proxy", "--config", writeConfig(t, "allow: a.example\ntls_addr: 127.0.0.1:65536\nhttp_addr: ':http-ish'\n")},
			[]string{`config.yaml:2: tls_addr: "127.0.0.1:65536"` + badPort, `config.yaml:3: http_addr: ":http-ish"` + badService,
				"the configuration has 2 errors"}},
		// Two listeners on one port: the second found it "in use" at start.
		{[]string{"proxy", "--allow", "a.example", "--tls-addr", "127.0.0.1:8443", "--http-addr", ":8443"},
			[]string{"--http-addr :8443: the same port as --tls-addr 127.0.0.1:8443: give each its own port", "the configuration has 1 error"}},
		{[]string{"server", "--allow", "a.example", "--http-addr", "127.0.0.1:8999"},
			[]string{"--http-addr 127.0.0.1:8999: the same port as --listen 127.0.0.1:8999", "the configuration has 1 error"}},
		// An ops listener on a main listener's port (localhost is
		// 127.0.0.1); metrics and the status page may share one.
		{[]string{"proxy", "--allow", "a.example", "--tls-addr", "127.0.0.1:8443", "--metrics-addr", "localhost:8443", "--status-addr", "localhost:8443"},
			[]string{"--metrics-addr localhost:8443: the same port as --tls-addr 127.0.0.1:8443", "--status-addr localhost:8443: the same port as --tls-addr", "the configuration has 2 errors"}},
		{[]string{"server", "--allow", "a.example", "--status-addr", "127.0.0.1:8999"},
			[]string{"--status-addr 127.0.0.1:8999: the same port as --listen 127.0.0.1:8999", "the configuration has 1 error"}},
	} {
		name := strings.Join(tc.args, " ")
		r := ck(t, 30*time.Second, append(tc.args, "--check-config")...)
		if r.code != 1 || strings.Contains(r.stdout, "configuration OK") {
			t.Errorf("%s --check-config: exit %d, stdout %q, want 1", name, r.code, r.stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s --check-config: stderr lacks %q:\n%s", name, w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "beyond loopback") {
			t.Errorf("%s --check-config: an address that is not one is also called reachable beyond loopback:\n%s", name, r.stderr)
		}
		// Start: the first error, and storage not even created.
		storageDir := filepath.Join(t.TempDir(), "storage")
		r = ck(t, 30*time.Second, append(tc.args, "--storage", storageDir)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want[0]) {
			t.Errorf("%s: exit %d, want 1 and %q; stderr:\n%s", name, r.code, tc.want[0], r.stderr)
		}
		if _, err := os.Stat(storageDir); err == nil {
			t.Errorf("%s: storage created before the listen addresses were checked", name)
		}
	}

	// Good addresses: an empty port (any), a service name, brackets.
	r := ck(t, 30*time.Second, "proxy", "--check-config", "--tls-addr", "127.0.0.1:", "--http-addr", "[::1]:http", "--metrics-addr", "localhost:9100")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "configuration OK" {
		t.Errorf("good addresses: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
