package cli

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestFlagsAfterArguments: flags after an argument are parsed, not taken
// for arguments (flag.Parse stops at the first argument), and the words a
// flag takes as its value stay its value.
func TestFlagsAfterArguments(t *testing.T) {
	empty := t.TempDir()
	deadAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	dashDir := filepath.Join(t.TempDir(), "-odd")
	if err := os.Mkdir(dashDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string // in stderr
	}{
		// --storage after DIR is used: the import reaches the (dead) Redis.
		{"storage after DIR", []string{"import", "--from", "certbot", empty, "--storage", "redis://" + deadAddr + "/0"}, "Redis at " + deadAddr},
		{"from after DIR", []string{"import", empty, "--storage", t.TempDir(), "--from", "certbot"}, "found no certificates or accounts of certbot in " + empty},
		// --dry-run is boolean: DIR after it stays the argument.
		{"bool before DIR", []string{"import", "--dry-run", empty, "--from", "certbot", "--storage", t.TempDir()}, "found no certificates or accounts of certbot in " + empty},
		// A value with spaces, like --post-hook 'systemctl reload nginx', is the flag's.
		{"value with spaces", []string{"import", "--from", "certbot", "--ca-roots", "no such roots.pem", empty}, "no such roots.pem"},
		// After --, a word starting with - is an argument.
		{"dash-dash", []string{"import", "--from", "certbot", "--storage", t.TempDir(), "--", dashDir}, "found no certificates or accounts of certbot in " + dashDir},
		// service install passes COMMAND ARGS on verbatim (outside Windows it
		// then says where to look): --config and --bogus are not its flags.
		{"service raw args", []string{"service", "install", "--", "proxy", "--config", "x", "--bogus"}, "deploy/certkeeper.service"},
		{"service raw args without --", []string{"service", "install", "proxy", "--bogus"}, "deploy/certkeeper.service"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := ck(t, 30*time.Second, tt.args...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "give the tool's directory") {
				t.Errorf("certkeeper %s: exit %d, stderr:\n%s\nwant exit 1 and %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.want)
			}
		})
	}
}

// TestFlagsBeforeSubcommand: "alpn-proxy --fallback ADDR start", the order
// acme-alpn-proxy documents, starts the proxy with that fallback, as does
// "alpn-proxy start --fallback ADDR"; stop takes its flag first too.
func TestFlagsBeforeSubcommand(t *testing.T) {
	for _, tt := range []struct {
		name  string
		args  func(addr, pidfile, listen string) []string
		order string
	}{
		{"before", func(addr, pidfile, listen string) []string {
			return []string{"alpn-proxy", "--fallback", addr, "--pidfile", pidfile, "start", "--listen", listen}
		}, "flags before start"},
		{"after", func(addr, pidfile, listen string) []string {
			return []string{"alpn-proxy", "start", "--listen", listen, "--fallback", addr, "--pidfile", pidfile}
		}, "flags after start"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// A fallback of its own: start's probe may come after the
			// client's connection, and must not be left for the next run.
			fallback, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer fallback.Close()
			addr := fallback.Addr().String()
			pidfile := filepath.Join(t.TempDir(), "alpn-proxy.pid")
			listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
			startALPNProxyArgs(t, pidfile, tt.args(addr, pidfile, listen)...)
			c, err := net.DialTimeout("tcp", listen, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			// The first connection may be start's probe of --fallback,
			// which sends nothing (it comes after the pidfile, so it may
			// also come second): the client's is the one with bytes.
			// Any connection that ends without a byte, however it ends,
			// is not the client's: take connections until one has bytes,
			// and say what each was if none has.
			fallback.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 4)
			var seen []string
			for len(seen) < 5 {
				fc, err := fallback.Accept()
				if err != nil {
					t.Fatalf("%s: --fallback %s got no connection with bytes: %v (before: %v)", tt.order, addr, err, seen)
				}
				fc.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, err := io.ReadFull(fc, got)
				fc.Close()
				seen = append(seen, fmt.Sprintf("%d bytes %q, %v", n, got[:n], err))
				if n > 0 {
					break
				}
			}
			if string(got) != "GET " {
				t.Errorf("%s: fallback read %v; want the client's bytes", tt.order, seen)
			}
			c.Close() // else stop waits --drain for it
			if r := ck(t, 40*time.Second, "alpn-proxy", "--pidfile", pidfile, "stop"); r.code != 0 {
				t.Errorf("alpn-proxy --pidfile P stop: exit %d, %s", r.code, r.stderr)
			}
		})
	}
}

// TestDidYouMean: a mistyped command or flag is a usage error (exit 2)
// that names the closest one.
func TestDidYouMean(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"statsu"}, `did you mean "certkeeper status"?`},
		{[]string{"cert", "renwe"}, `did you mean "certkeeper cert renew"?`},
		{[]string{"cert", "list"}, `unknown command "certkeeper cert list"; did you mean "certkeeper status" (lego's list)?`},
		{[]string{"storage", "certificates"}, `did you mean "certkeeper status" (certbot's certificates)?`},
		{[]string{"proxy", "--alow", "a.example"}, "unknown flag --alow; did you mean --allow?"},
		{[]string{"import", "/x", "--form", "certbot"}, "unknown flag --form; did you mean --from?"},
		{[]string{"alpn-proxy", "--fallbak", "127.0.0.1:1", "start"}, "unknown flag --fallbak; did you mean --fallback?"},
		{[]string{"alpn-proxy", "--listen", "127.0.0.1:1", "stop"}, "certkeeper alpn-proxy stop: unknown flag --listen"},
		{[]string{"frobnicate"}, `unknown command "certkeeper frobnicate"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := ck(t, 30*time.Second, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, tt.want)
			}
			if tt.args[0] == "frobnicate" && strings.Contains(r.stderr, "did you mean") {
				t.Errorf("suggestion for a word close to nothing:\n%s", r.stderr)
			}
		})
	}
}

// TestNameWithoutFlag: a name typed as an argument (certkeeper proxy
// a.example) is a usage error that says which flag takes it; an argument
// to any command that takes none is a usage error too. (doctor takes its
// one name either way: TestDoctor.)
func TestNameWithoutFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor", "a.example", "b.example"}, `doctor checks one name at a time: give it as -d NAME or as the argument, not ["a.example" "b.example"]`},
		{[]string{"doctor", "-d", "a.example", "b.example"}, `doctor checks one name at a time`},
		{[]string{"proxy", "a.example"}, `unexpected arguments ["a.example"]: names go with --allow`},
		{[]string{"server", "a.example"}, `unexpected arguments ["a.example"]: names go with --allow or --managed`},
		// A forgotten value: the next flag is not taken as --allow's value.
		{[]string{"proxy", "--allow", "--storage", "/tmp/x"}, "certkeeper proxy: --allow needs a value: --allow PATTERN (--storage is a flag; to give it as the value, write --allow=--storage)"},
		{[]string{"cert", "issue", "a.example"}, `unexpected arguments ["a.example"]: names go with -d`},
		// Every command that takes no arguments refuses them before it
		// does anything (account show once ignored them).
		{[]string{"account", "show", "ops@a.example"}, `unexpected arguments ["ops@a.example"]: account show takes no arguments`},
		{[]string{"version", "x"}, `unexpected arguments ["x"]: version takes no arguments`},
		{[]string{"storage", "keygen", "x"}, `unexpected arguments ["x"]: storage keygen takes no arguments`},
		// What users of other tools type says what to type instead.
		{[]string{"cert", "renew", "a.example"}, `unexpected arguments ["a.example"]: cert renew renews every due pair in --out-dir; to renew one certificate now: cert renew -d NAME --force`},
		{[]string{"cert", "revoke", "a.pem"}, `unexpected arguments ["a.pem"]: the certificate goes with --cert FILE`},
		// certbot's plugin modes, which certkeeper does not have.
		{[]string{"cert", "issue", "--nginx", "-d", "a.example"}, "--nginx (certbot): certkeeper does not edit nginx's configuration, as certbot's nginx plugin does: give --webroot DIR"},
		{[]string{"cert", "issue", "-d", "a.example", "--apache"}, "--deploy-hook 'systemctl reload apache2'"},
		{[]string{"deploy", "a.example"}, `unexpected arguments ["a.example"]: names go with -d, the layout with --format and --out-dir`},
		{[]string{"storage", "migrate", "/a", "/b"}, `the storages go with --from and --to (e.g. --from /var/lib/certkeeper --to redis://10.0.0.5:6379/0)`},
		// A timeout of 0 gave up at once, saying another run held the
		// directory (a trial).
		{[]string{"cert", "issue", "--ca", "local", "-d", "a.example", "--timeout", "0"}, "--timeout 0s: give how long to wait, more than 0 (e.g. 10m)"},
		{[]string{"cert", "renew", "--timeout", "0"}, "--timeout 0s: give how long to wait, more than 0"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := ck(t, 30*time.Second, tt.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", r.code, r.stderr, tt.want)
			}
		})
	}
}

// TestVersionFlag: --version prints what the version command prints.
func TestVersionFlag(t *testing.T) {
	want := ck(t, 30*time.Second, "version")
	r := ck(t, 30*time.Second, "--version")
	if r.code != 0 || r.stdout != want.stdout || !strings.HasPrefix(r.stdout, "certkeeper ") {
		t.Errorf("--version: exit %d, stdout %q; want 0 and %q", r.code, r.stdout, want.stdout)
	}
}

// TestFlagKindsAgree: under each command group, a flag name is boolean in
// every command that defines it or in none, so that groupArgs knows whether
// "GROUP --flag WORD SUB" gives WORD to the flag.
func TestFlagKindsAgree(t *testing.T) {
	var walk func(c *Command)
	walk = func(c *Command) {
		if len(c.Commands) == 0 {
			return
		}
		kinds := make(map[string]map[bool][]string)
		var leaves func(c *Command)
		leaves = func(l *Command) {
			for _, sub := range l.Commands {
				leaves(sub)
			}
			if len(l.Commands) == 0 {
				l.FlagSet(globalFlags).VisitAll(func(f *flag.Flag) {
					if kinds[f.Name] == nil {
						kinds[f.Name] = make(map[bool][]string)
					}
					kinds[f.Name][cmdline.IsBool(f)] = append(kinds[f.Name][cmdline.IsBool(f)], l.FullName())
				})
			}
		}
		leaves(c)
		for name, k := range kinds {
			if len(k) > 1 {
				t.Errorf("under %q, --%s is boolean in %v but takes a value in %v", c.FullName(), name, k[true], k[false])
			}
		}
		for _, sub := range c.Commands {
			walk(sub)
		}
	}
	walk(root())
}
