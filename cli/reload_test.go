//go:build unix

package cli

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestReloadWarnsRestart: on SIGHUP the proxy and the server apply what
// they can, and warn once per changed setting that takes a restart,
// naming it; the settings they apply get no warning, and the reload's
// own line names those only, not the ones that take a restart.
func TestReloadWarnsRestart(t *testing.T) {
	const restart = " changed in the config file: restart certkeeper to apply it"
	files := t.TempDir()
	for _, name := range []string{"a", "b"} {
		cert, key := filepath.Join(files, name+".pem"), filepath.Join(files, name+".key")
		if r := ck(t, 30*time.Second, "selfsigned", "-d", name+".file.test", "--cert-out", cert, "--key-out", key); r.code != 0 {
			t.Fatalf("selfsigned: exit %d\n%s", r.code, r.stderr)
		}
	}
	for _, tc := range []struct {
		cmd, ready, before, after string
		warn, quiet               []string
	}{
		{"proxy", "proxy listening",
			"tls_addr: 127.0.0.1:%d\nca: local\nallow: a.test\nbackend: 127.0.0.1:1\ncert_file: " + files + "/a.pem:" + files + "/a.key\n",
			"tls_addr: 127.0.0.1:%d\nca: local\nallow: [a.test, b.test]\nbackend: 127.0.0.1:2\nkey_type: rsa2048\nroute: c.test=127.0.0.1:3\n" +
				"cert_file: " + files + "/b.pem:" + files + "/b.key\n",
			[]string{"tls_addr", "key_type", "cert_file"}, []string{"allow", "backend", "route"}},
		{"server", "server listening",
			"listen: 127.0.0.1:%d\nno_auth: true\nca: local\nallow: a.test\n",
			"listen: 127.0.0.1:%d\nno_auth: true\nca: local\nallow: [a.test, b.test]\nrequire_own_ip: true\nissue_timeout: 1m\n",
			[]string{"listen", "issue_timeout"}, []string{"allow", "require_own_ip"}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.yaml")
			writeFileAtomic(t, file, fmt.Sprintf(tc.before, testsvc.FreePort(t)))
			p := startLogged(t, binary, tc.ready, tc.cmd, "--config", file, "--storage", t.TempDir())
			writeFileAtomic(t, file, fmt.Sprintf(tc.after, testsvc.FreePort(t)))
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			if !within(10*time.Second, func() bool { return strings.Contains(p.output(), "configuration reloaded") }) {
				t.Fatalf("no reload logged within 10 s of SIGHUP:\n%s", p.output())
			}
			out := p.output()
			line, _, _ := strings.Cut(out[strings.Index(out, "configuration reloaded"):], "\n")
			for _, key := range tc.warn {
				if n := strings.Count(out, key+restart); n != 1 {
					t.Errorf("the log has %q %d times, want once:\n%s", key+restart, n, out)
				}
				if strings.Contains(line, key) {
					t.Errorf("%s takes a restart, yet the reload's line lists it as reloaded: %s", key, line)
				}
			}
			for _, key := range tc.quiet {
				if strings.Contains(out, key+restart) {
					t.Errorf("%s is applied on reload, yet the log says it takes a restart:\n%s", key, out)
				}
			}
			// Again, the file unchanged: nothing changed since, and the
			// warnings still stand (a trial read "nothing changed", then
			// the same warnings).
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			const again = "configuration reloaded: nothing changed since the last reload (what changed before still takes a restart)"
			if !within(10*time.Second, func() bool { return strings.Contains(p.output(), again) }) {
				t.Errorf("a second SIGHUP with the file unchanged did not log %q:\n%s", again, p.output())
			}
		})
	}
}

// TestDevModeReload: SIGHUP in development mode keeps its defaults: the
// first request for localhost after it still gets a certificate (the
// reload dropped the localhost allowlist, and then every new name).
func TestDevModeReload(t *testing.T) {
	be := newBackend(t, "dev backend")
	dir := t.TempDir()
	port := testsvc.FreePort(t)
	p := startProxyLogged(t, "--storage", dir, "--tls-addr", "127.0.0.1:"+strconv.Itoa(port), "--backend", be.url)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// Without --config there is nothing to read again, and it says so
	// (it logged "configuration reloaded" with config="").
	if !within(10*time.Second, func() bool {
		return strings.Contains(p.output(), "SIGHUP: no --config file to read again; nothing changed")
	}) {
		t.Fatalf("no reload logged within 10 s of SIGHUP:\n%s", p.output())
	}
	if strings.Contains(p.output(), "configuration reloaded") {
		t.Errorf("a reload without --config said the configuration was reloaded:\n%s", p.output())
	}
	root := ck(t, 30*time.Second, "ca", "root", "--storage", dir)
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, []byte(root.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	if body, _ := curl(t, rootFile, "localhost", port); body != "dev backend" {
		t.Errorf("development mode after SIGHUP served %q, want the backend's body", body)
	}
}

// TestConfigKeyOverridden: a config file key that a flag given overrides
// is noted at start and at each reload, since editing it changes nothing.
func TestConfigKeyOverridden(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	writeFileAtomic(t, file, fmt.Sprintf("tls_addr: 127.0.0.1:%d\nca: local\nallow: a.test\n", testsvc.FreePort(t)))
	p := startLogged(t, binary, "proxy listening", "proxy", "--config", file, "--storage", t.TempDir(), "--allow", "b.test")
	note := "allow in " + file + " is overridden by --allow on the command line"
	if strings.Count(p.output(), note) != 1 {
		t.Fatalf("start: want the note %q once:\n%s", note, p.output())
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !within(10*time.Second, func() bool { return strings.Count(p.output(), note) == 2 }) {
		t.Errorf("reload: want the note %q again:\n%s", note, p.output())
	}
	if strings.Contains(p.output(), "tls_addr in "+file+" is overridden") {
		t.Errorf("a key no flag overrides is noted:\n%s", p.output())
	}
}

// TestReloadWarnsNotPublic: a reload that allows a name Let's Encrypt
// never issues for warns of it, as the start does.
func TestReloadWarnsNotPublic(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	conf := "tls_addr: 127.0.0.1:%d\nca: staging\nemail: a@example.com\nallow: [%s]\n"
	port := testsvc.FreePort(t)
	writeFileAtomic(t, file, fmt.Sprintf(conf, port, "www.example.com"))
	p := startLogged(t, binary, "proxy listening", "proxy", "--config", file, "--storage", t.TempDir())
	writeFileAtomic(t, file, fmt.Sprintf(conf, port, "www.example.com, printer.local"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := "--allow printer.local: Let's Encrypt cannot issue for it"
	if !within(10*time.Second, func() bool { return strings.Contains(p.output(), want) }) {
		t.Errorf("no warning %q within 10 s of SIGHUP:\n%s", want, p.output())
	}
}

// TestReloadSaysWhatChanged: the log line of a reload names what changed
// since the last configuration (entries added to and removed from a list,
// the keys of other settings), and a reload of an unchanged file says
// nothing changed.
func TestReloadSaysWhatChanged(t *testing.T) {
	for _, tc := range []struct {
		cmd, ready, before, after string
		want                      []string
	}{
		{"proxy", "proxy listening",
			"tls_addr: 127.0.0.1:%d\nca: local\nallow: [a.test, b.test]\nbackend: 127.0.0.1:1\n",
			"tls_addr: 127.0.0.1:%d\nca: local\nallow: [b.test, e.test]\nbackend: 127.0.0.1:2\nroute: c.test=127.0.0.1:3\n",
			[]string{`allow_added=[e.test] allow_removed=[a.test] route_added="[c.test=127.0.0.1:3]"`, `changed=[backend]`}},
		{"server", "server listening",
			"listen: 127.0.0.1:%d\nno_auth: true\nca: local\nallow: a.test\n",
			"listen: 127.0.0.1:%d\nno_auth: true\nca: local\nallow: [a.test, b.test]\nrequire_own_ip: true\n",
			[]string{"allow_added=[b.test]", `changed=[require_own_ip]`}},
	} {
		t.Run(tc.cmd, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.yaml")
			writeFileAtomic(t, file, fmt.Sprintf(tc.before, testsvc.FreePort(t)))
			p := startLogged(t, binary, tc.ready, tc.cmd, "--config", file, "--storage", t.TempDir())
			writeFileAtomic(t, file, fmt.Sprintf(tc.after, testsvc.FreePort(t)))
			for i, want := range [][]string{tc.want, {"configuration reloaded: nothing changed"}} {
				if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				if !within(10*time.Second, func() bool { return strings.Count(p.output(), "configuration reloaded") == i+1 }) {
					t.Fatalf("reload %d not logged within 10 s of SIGHUP:\n%s", i+1, p.output())
				}
				line := p.output()[strings.LastIndex(p.output(), "configuration reloaded"):]
				line, _, _ = strings.Cut(line, "\n")
				for _, w := range want {
					if !strings.Contains(line, w) {
						t.Errorf("reload %d logged %q, want it to hold %q", i+1, line, w)
					}
				}
				if i == 1 && strings.Contains(line, "added") {
					t.Errorf("reload of an unchanged file logged %q", line)
				}
				if strings.Contains(line, "tls_addr") || strings.Contains(line, "listen") {
					t.Errorf("reload %d logged %q: a listener's address takes a restart, it was not reloaded", i+1, line)
				}
			}
		})
	}
}

// TestReloadRefusesEmptied: a config file emptied, or cut short before
// its allow list, while being written (an editor, configuration
// management) is not applied at a SIGHUP: the running configuration stays
// and the log says why; a configuration that allows no name is applied by
// a restart only.
func TestReloadRefusesEmptied(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	port, ops := testsvc.FreePort(t), fmt.Sprintf("127.0.0.1:%d", testsvc.FreePort(t))
	good := fmt.Sprintf("tls_addr: 127.0.0.1:%d\nca: local\nallow: a.test\nbackend: 127.0.0.1:1\nmetrics_addr: %s\nstatus_addr: %s\n", port, ops, ops)
	writeFileAtomic(t, file, good)
	p := startLogged(t, binary, "proxy listening", "proxy", "--config", file, "--storage", t.TempDir())
	for i, tc := range []struct{ text, want string }{
		{"", "holds no setting (empty, or only comments)"},
		{fmt.Sprintf("tls_addr: 127.0.0.1:%d\nca: local\n", port), "the new configuration allows no name on demand"},
	} {
		writeFileAtomic(t, file, tc.text)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !within(10*time.Second, func() bool { return strings.Count(p.output(), "keeping the old one") == i+1 }) {
			t.Fatalf("reload %d (%q): not refused within 10 s:\n%s", i+1, tc.text, p.output())
		}
		if !strings.Contains(p.output(), tc.want) {
			t.Errorf("reload %d: the refusal does not say %q:\n%s", i+1, tc.want, p.output())
		}
	}
	if strings.Contains(p.output(), "configuration reloaded") {
		t.Errorf("an emptied configuration was applied:\n%s", p.output())
	}
	// The metrics and the status page say it too: the SIGHUP (systemctl
	// reload) cannot fail, and an ops trial's mistyped key showed only in
	// the log. A reload that works ends it.
	reloaded := func() float64 {
		v, _ := metricValue(scrape(t, "http://"+ops+"/metrics"), "certkeeper_config_last_reload_successful", nil)
		return v
	}
	if v := reloaded(); v != 0 || !strings.Contains(getBody(t, "http://"+ops+"/"), "Reloading the configuration failed at") {
		t.Errorf("after a refused reload: certkeeper_config_last_reload_successful %v, want 0, and a warning on the status page", v)
	}
	writeFileAtomic(t, file, good)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !within(10*time.Second, func() bool { return strings.Contains(p.output(), "configuration reloaded") }) {
		t.Fatalf("the good configuration was not reloaded:\n%s", p.output())
	}
	if v := reloaded(); v != 1 || strings.Contains(getBody(t, "http://"+ops+"/"), "Reloading the configuration failed") {
		t.Errorf("after a reload that worked: certkeeper_config_last_reload_successful %v, want 1, and no warning on the page", v)
	}
}

// TestReloadWarnsStillServed: a reload that takes out of allow a name
// whose certificate the proxy holds warns that it is still served (until
// it expires), and how to stop it: a trial took removing a site for
// stopping it, and its name went on being served by the default backend.
// A name taken out that holds no certificate, or that a pattern still
// allows, is not warned of.
func TestReloadWarnsStillServed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	port := testsvc.FreePort(t)
	conf := "tls_addr: 127.0.0.1:%d\nca: local\nallow: [%s]\nbackend: 127.0.0.1:1\n"
	writeFileAtomic(t, file, fmt.Sprintf(conf, port, "a.test, b.test, c.x.test, '*.x.test'"))
	dir := t.TempDir()
	p := startLogged(t, binary, "proxy listening", "proxy", "--config", file, "--storage", dir)
	for _, name := range []string{"a.test", "c.x.test"} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", "127.0.0.1:"+strconv.Itoa(port),
			&tls.Config{ServerName: name, InsecureSkipVerify: true}) // the local CA's trust is not what this tests
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		conn.Close()
	}
	writeFileAtomic(t, file, fmt.Sprintf(conf, port, "'*.x.test'"))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !within(10*time.Second, func() bool { return strings.Contains(p.output(), "configuration reloaded") }) {
		t.Fatalf("no reload logged within 10 s of SIGHUP:\n%s", p.output())
	}
	out := p.output()
	want := "certkeeper storage delete --storage " + dir + " a.test"
	if strings.Count(out, "keeps its certificate, served until it expires") != 1 || !strings.Contains(out, want) {
		t.Errorf("the reload does not warn once that a.test is still served, with %q:\n%s", want, out)
	}
	for _, name := range []string{" b.test", "c.x.test"} {
		if strings.Contains(out, "delete --storage "+dir+name) {
			t.Errorf("warned of %s, which holds no certificate or is still allowed:\n%s", name, out)
		}
	}
}

// TestReloadWarnsKeyRotated: a SIGHUP after a DNS key file was rewritten in
// place (a TSIG key rotated) warns that the key is read at start only, and
// what to do, naming the file (a DNS trial's reload said nothing changed,
// and the server went on signing with the old key); the same key does not.
func TestReloadWarnsKeyRotated(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "tsig.key")
	writeKey := func(secret string) {
		if err := os.WriteFile(key, []byte("certkeeper:hmac-sha256:"+secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey("c2VjcmV0LW9uZS1zZWNyZXQtb25lLXNlY3JldC1vbmU=")
	p := startLogged(t, binary, "server listening", "server", "--no-auth", "--listen", "127.0.0.1:"+strconv.Itoa(testsvc.FreePort(t)),
		"--ca", "local", "--allow", "a.test", "--storage", filepath.Join(dir, "st"),
		"--dns", "rfc2136", "--dns-server", "127.0.0.1:1", "--tsig-key-file", key)
	const warning = "a DNS key file changed since the start; it is read at start only"
	sighup := func(n int) {
		t.Helper()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if !within(10*time.Second, func() bool { return strings.Count(p.output(), "SIGHUP") >= n }) {
			t.Fatalf("reload %d not logged within 10 s:\n%s", n, p.output())
		}
	}
	sighup(1)
	if strings.Contains(p.output(), warning) {
		t.Errorf("an unchanged key file is warned about:\n%s", p.output())
	}
	writeKey("c2VjcmV0LXR3by1zZWNyZXQtdHdvLXNlY3JldC10d28=")
	sighup(2)
	if !within(5*time.Second, func() bool { return strings.Contains(p.output(), warning) }) || !strings.Contains(p.output(), "file="+key) ||
		!strings.Contains(p.output(), "SIGUSR2") {
		t.Errorf("a rotated key: want a warning naming the file and SIGUSR2:\n%s", p.output())
	}
}

// getBody is the body of a GET of url (a loopback status page).
func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(body)
}
