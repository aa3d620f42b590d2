package testsvc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const nginxHint = "install nginx with the Lua module (Debian: apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-resty-lrucache)"

// nginxModuleDirs are where Debian's nginx packages put dynamic modules.
var nginxModuleDirs = []string{"/usr/lib/nginx/modules", "/usr/share/nginx/modules"}

// luaPaths are searched for lua-resty-core and lua-resty-lrucache.
var luaPaths = []string{"/usr/share/lua/5.1", "/usr/local/share/lua/5.1", "/usr/local/openresty/lualib"}

// NginxOptions configure Nginx.
type NginxOptions struct {
	// HTTP is the inside of the http block: lua_shared_dict,
	// init_by_lua_block, server blocks and so on. The test picks the
	// listen ports (FreePort) and must listen on 127.0.0.1 only.
	HTTP string

	// Stream, if set, is the inside of a stream block (ngx_stream_module
	// is then loaded; Debian: libnginx-mod-stream). It must listen on
	// 127.0.0.1 only.
	Stream string

	// Workers is worker_processes. Zero means 1.
	Workers int

	// Ready are addresses (host:port) dialled until they accept, to know
	// nginx is serving. Empty waits only for the master's pid file.
	Ready []string

	// User is the user directive ("nobody nogroup") that the workers run
	// as when nginx starts as root, as in a packaged nginx (www-data on
	// Debian). Empty runs them as root too, so that they read whatever
	// the test wrote.
	User string
}

// NginxServer is a running nginx with its own configuration in a
// temporary directory.
type NginxServer struct {
	dir  string
	proc *Process
}

// Nginx starts nginx as a child of the test, with a configuration written
// to a temporary directory: the Lua module loaded, lua_package_path with
// the repository's lua/ directory and Debian's Lua libraries, logs and
// temporary files in that directory, and opts.HTTP as the http block. It
// waits until opts.Ready accept connections. nginx is stopped when the
// test ends. Without nginx or its Lua module the test is skipped (failed
// under CI=true).
func Nginx(t testing.TB, opts NginxOptions) *NginxServer {
	t.Helper()
	n, cmd := prepareNginx(t, opts)
	p, err := StartProcess(t, cmd, nil)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	n.proc = p
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(n.ErrorLog()); err == nil {
				t.Logf("nginx error.log:\n%s", lastBytes(b, 16<<10))
			}
		}
	})
	err = p.WaitReady(readyTimeout, func(ctx context.Context) error {
		if _, err := os.Stat(filepath.Join(n.dir, "nginx.pid")); err != nil {
			return err
		}
		return dialAll(ctx, opts.Ready)
	})
	if err != nil {
		b, _ := os.ReadFile(n.ErrorLog())
		t.Fatalf("testsvc: nginx: %v\nerror.log:\n%s", err, lastBytes(b, 8<<10))
	}
	return n
}

// dialAll connects to every address in addrs and closes the connections
// again; it fails at the first that does not answer.
func dialAll(ctx context.Context, addrs []string) error {
	for _, a := range addrs {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// NginxFails starts nginx as [Nginx] does, expecting it to refuse to
// start, as it does when its configuration or an init_by_lua block fails
// (nginx -t does not run init_by_lua, so only a real start tells). It
// waits for nginx to exit and returns its output and error log. The test
// fails if nginx serves opts.Ready instead, is still running after
// readyTimeout, or exits 0.
func NginxFails(t testing.TB, opts NginxOptions) string {
	t.Helper()
	n, cmd := prepareNginx(t, opts)
	p, err := StartProcess(t, cmd, nil)
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	err = p.WaitReady(readyTimeout, func(ctx context.Context) error {
		if len(opts.Ready) == 0 {
			return errors.New("no address to dial")
		}
		return dialAll(ctx, opts.Ready)
	})
	b, _ := os.ReadFile(n.ErrorLog())
	switch {
	case err == nil:
		t.Fatalf("testsvc: nginx started and serves %v, want it to refuse to start:\n%s", opts.Ready, lastBytes(b, 8<<10))
	case !errors.Is(err, ErrExited):
		t.Fatalf("testsvc: nginx neither started nor exited: %v\n%s", err, lastBytes(b, 8<<10))
	}
	out := p.Output() + string(b)
	if p.err == nil {
		t.Fatalf("testsvc: nginx exited 0, want it to refuse to start:\n%s", out)
	}
	return out
}

// prepareNginx writes nginx.conf for opts in a new temporary directory
// and returns the command that runs nginx on it.
func prepareNginx(t testing.TB, opts NginxOptions) (*NginxServer, *exec.Cmd) {
	t.Helper()
	bin := LookPath(t, "nginx", nginxHint)
	var modDir string
	for _, d := range nginxModuleDirs {
		if _, err := os.Stat(filepath.Join(d, "ngx_http_lua_module.so")); err == nil {
			modDir = d
			break
		}
	}
	if modDir == "" {
		Unavailable(t, "nginx Lua module", nginxHint, fmt.Errorf("ngx_http_lua_module.so not in %v", nginxModuleDirs))
	}
	var restyPath string
	for _, d := range luaPaths {
		if _, err := os.Stat(filepath.Join(d, "resty", "core.lua")); err == nil {
			restyPath = d
			break
		}
	}
	if restyPath == "" {
		Unavailable(t, "lua-resty-core", nginxHint, fmt.Errorf("resty/core.lua not in %v", luaPaths))
	}
	if opts.Stream != "" {
		if _, err := os.Stat(filepath.Join(modDir, "ngx_stream_module.so")); err != nil {
			Unavailable(t, "nginx stream module", "install it (Debian: apt-get install libnginx-mod-stream)", err)
		}
	}
	repoLua, err := repoDir("lua")
	if err != nil {
		t.Fatalf("testsvc: %v", err)
	}
	n := &NginxServer{dir: t.TempDir()}
	// Workers run as an unprivileged user when nginx starts as root; they
	// must reach the temporary files.
	if err := os.Chmod(n.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := n.config(opts, modDir, repoLua, restyPath)
	if err := os.WriteFile(filepath.Join(n.dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", n.dir+"/", "-c", filepath.Join(n.dir, "nginx.conf"), "-e", n.ErrorLog())
	cmd.Dir = n.dir
	return n, cmd
}

// config is the whole nginx.conf.
func (n *NginxServer) config(opts NginxOptions, modDir, repoLua, restyPath string) string {
	workers := max(opts.Workers, 1)
	var b strings.Builder
	fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nworker_processes %d;\npid %s;\n", workers, filepath.Join(n.dir, "nginx.pid"))
	if os.Geteuid() == 0 {
		user := cmp.Or(opts.User, "root") // root: the temporary files stay readable
		fmt.Fprintf(&b, "user %s;\n", user)
	}
	fmt.Fprintf(&b, "error_log %s notice;\n", n.ErrorLog())
	if _, err := os.Stat(filepath.Join(modDir, "ndk_http_module.so")); err == nil {
		fmt.Fprintf(&b, "load_module %s;\n", filepath.Join(modDir, "ndk_http_module.so"))
	}
	fmt.Fprintf(&b, "load_module %s;\n", filepath.Join(modDir, "ngx_http_lua_module.so"))
	if opts.Stream != "" {
		fmt.Fprintf(&b, "load_module %s;\n", filepath.Join(modDir, "ngx_stream_module.so"))
	}
	b.WriteString("events { worker_connections 1024; }\n")
	if opts.Stream != "" {
		fmt.Fprintf(&b, "stream {\n%s\n}\n", opts.Stream)
	}
	b.WriteString("http {\n")
	fmt.Fprintf(&b, "  access_log %s;\n", filepath.Join(n.dir, "access.log"))
	for _, tmp := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "  %s_temp_path %s;\n", tmp, filepath.Join(n.dir, tmp+"_temp"))
	}
	fmt.Fprintf(&b, "  lua_package_path \"%s/?.lua;%s/?.lua;;\";\n", repoLua, restyPath)
	b.WriteString(opts.HTTP)
	b.WriteString("\n}\n")
	return b.String()
}

// Dir is nginx's prefix directory, where the test may put certificate
// files its configuration names.
func (n *NginxServer) Dir() string { return n.dir }

// ErrorLog is the path of nginx's error log.
func (n *NginxServer) ErrorLog() string { return filepath.Join(n.dir, "error.log") }

// Stop stops nginx.
func (n *NginxServer) Stop() { _ = n.proc.Stop() }

// repoDir returns the absolute path of rel in the module's root, found by
// walking up from the working directory to go.mod.
func repoDir(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		// The main module's go.mod, not the tools module's.
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(b), "module github.com/certkeeper/certkeeper\n") {
			return filepath.Join(dir, rel), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// CPUTime is the processor time nginx's master and worker processes
// have used so far, read from /proc/PID/schedstat (Linux only; nanosecond
// resolution, where /proc/PID/stat counts 10 ms ticks). A benchmark
// compares its growth across workloads: unlike a rate over wall time, it
// barely depends on what else the machine is running.
func (n *NginxServer) CPUTime() (time.Duration, error) {
	pid := n.proc.Pid()
	kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, p := range append([]string{strconv.Itoa(pid)}, strings.Fields(string(kids))...) {
		b, err := os.ReadFile("/proc/" + p + "/schedstat")
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, fmt.Errorf("/proc/%s/schedstat is empty", p)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%s/schedstat: %w", p, err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}
