//go:build linux

package alpnproxy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/alpnproxy"
)

// bystander starts a process that sleeps a minute (killed at cleanup) for
// a pidfile to name, and returns its process ID and a check that fails
// the test if it was stopped within 200 ms. Its command line names
// alpn-proxy, as a proxy's does (a process that does not is refused:
// TestPidfileOtherProgram).
func bystander(t *testing.T) (int, func(what string)) {
	t.Helper()
	return sleeper(t, "exec -a alpn-proxy sleep 60")
}

// sleeper is bystander with the shell command given.
func sleeper(t *testing.T, script string) (int, func(what string)) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Until bash has run exec, the process's command line is the test's,
	// then bash's; sleep's ends in "60".
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); err == nil && strings.HasSuffix(string(b), "\x0060\x00") {
			break
		}
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	alive := func(what string) {
		t.Helper()
		select {
		case err := <-exited:
			exited <- err // for the cleanup, which waits for it
			t.Fatalf("%s was stopped: %v", what, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return cmd.Process.Pid, alive
}

// TestPidfileReusedPID: a pidfile left by a proxy that died without
// removing it names a process ID the system may give to another program.
// A process that started after the pidfile was written is not the proxy:
// Stop does not signal it, Status says not running, Halt removes the
// pidfile, and Run starts. A process that started before is taken as the
// proxy.
func TestPidfileReusedPID(t *testing.T) {
	pid, alive := bystander(t)
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))

	// Written now, after the process started: its writer may be it.
	if err := p.Write(pid); err != nil {
		t.Fatal(err)
	}
	if got, err := p.Status(); err != nil || got != pid {
		t.Fatalf("Status of a pidfile written after process %d started = %d, %v; want running", pid, got, err)
	}

	// Written an hour before the process started: a dead proxy's.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(string(p), old, old); err != nil {
		t.Fatal(err)
	}
	if !p.StartedAfter(pid) {
		t.Fatalf("StartedAfter(%d) = false for a process younger than its pidfile", pid)
	}
	if _, err := p.Status(); err == nil || !strings.Contains(err.Error(), "another program has its process ID") {
		t.Errorf("Status = %v; want not running, another program", err)
	}
	res, got, err := p.Stop(t.Context(), 2*time.Second)
	if err != nil || res != alpnproxy.Reused || got != pid {
		t.Errorf("Stop = %v, %d, %v; want Reused, %d", res, got, err, pid)
	}
	msg, err := p.Halt(t.Context(), 2*time.Second, nil)
	if err != nil || !strings.Contains(msg, "another program has its process ID, left alone") {
		t.Errorf("Halt = %q, %v", msg, err)
	}
	alive("the other program")
	if _, err := os.Stat(string(p)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Halt left the pidfile: %v", err)
	}

	// Run is not refused by such a pidfile.
	if err := p.Write(pid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(string(p), old, old); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	listening := false
	r := &alpnproxy.Runner{
		Server:  &alpnproxy.Server{ALPNAddr: "127.0.0.1:1", FallbackAddr: "127.0.0.1:1"},
		Addr:    "127.0.0.1:0",
		Pidfile: p,
		Notify: func(e alpnproxy.Event) {
			if e.Kind == alpnproxy.Listening {
				listening = true
				cancel()
			}
		},
	}
	if err := r.Run(ctx); err != nil || !listening {
		t.Errorf("Run with the pidfile of process %d, younger than it = %v (listened: %v); want it to run", pid, err, listening)
	}
}

// TestPidfileOtherOwner: a pidfile another user owns is not trusted. In
// the temporary directory (the default pidfile of a user without
// $XDG_RUNTIME_DIR) anyone can write it first, naming any of this user's
// processes: Stop signalled it (trial 30). Now Read, Stop, Status and
// Halt refuse it, and the process named is left alone. Needs root, to
// give the file to another user.
func TestPidfileOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
	victim, alive := bystander(t)
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "proxy.pid"))
	if err := p.Write(victim); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(string(p), 65534, 65534); err != nil { // nobody
		t.Fatal(err)
	}
	if _, err := p.Read(); err == nil || !strings.Contains(err.Error(), "owned by user 65534") {
		t.Errorf("Read of another user's pidfile = %v; want refused, naming the owner", err)
	}
	if res, _, err := p.Stop(t.Context(), time.Second); err == nil {
		t.Errorf("Stop of another user's pidfile = %v, nil; want an error", res)
	}
	if _, err := p.Status(); err == nil {
		t.Error("Status of another user's pidfile: no error")
	}
	if _, err := p.Halt(t.Context(), time.Second, nil); err == nil {
		t.Error("Halt of another user's pidfile: no error")
	}
	alive("the process another user's pidfile named")
	if _, err := os.Stat(string(p)); err != nil {
		t.Errorf("another user's pidfile was removed: %v", err)
	}
}

// TestPidfileSymlink: a pidfile that is a symbolic link is not trusted:
// anyone may make one in the temporary directory, pointing at a file of
// this user's that holds a number (another pidfile), whose owner the
// check of TestPidfileOtherOwner takes; a security trial's stop signalled
// an unrelated process that way. Read, Stop and Status refuse it, and
// the process named is left alone.
func TestPidfileSymlink(t *testing.T) {
	victim, alive := bystander(t)
	dir := t.TempDir()
	target := alpnproxy.Pidfile(filepath.Join(dir, "other.pid")) // this user's, naming its process
	if err := target.Write(victim); err != nil {
		t.Fatal(err)
	}
	p := alpnproxy.Pidfile(filepath.Join(dir, "proxy.pid"))
	if err := os.Symlink(string(target), string(p)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Read(); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Errorf("Read of a symbolic link = %v; want refused", err)
	}
	if res, _, err := p.Stop(t.Context(), time.Second); err == nil {
		t.Errorf("Stop through a symbolic link = %v, nil; want an error", res)
	}
	if _, err := p.Status(); err == nil {
		t.Error("Status through a symbolic link: no error")
	}
	alive("the process a symbolic link's target named")
}

// TestDefaultPidfileEnv: $ACME_ALPN_PROXY_PIDFILE, the variable of
// letsdebug/acme-alpn-proxy, chooses the default pidfile, so that scripts
// written for it find the proxy; without it, the default is in /run for
// root and named with the user ID in a shared directory otherwise.
func TestDefaultPidfileEnv(t *testing.T) {
	t.Setenv("ACME_ALPN_PROXY_PIDFILE", "/tmp/from-env.pid")
	if got := alpnproxy.DefaultPidfile(); got != "/tmp/from-env.pid" {
		t.Errorf("DefaultPidfile() = %s with $ACME_ALPN_PROXY_PIDFILE=/tmp/from-env.pid", got)
	}
	t.Setenv("ACME_ALPN_PROXY_PIDFILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	want := filepath.Join(os.TempDir(), fmt.Sprintf("certkeeper-alpn-proxy-%d.pid", os.Getuid()))
	if os.Geteuid() == 0 {
		want = "/run/certkeeper-alpn-proxy.pid"
	}
	if got := alpnproxy.DefaultPidfile(); string(got) != want {
		t.Errorf("DefaultPidfile() = %s, want %s", got, want)
	}
}

// TestPidfileOtherProgram: a pidfile that names a process that is not an
// alpn-proxy (another program's pidfile, given by mistake: an alpn-proxy
// trial's stop --pidfile /run/nginx.pid sent nginx SIGTERM) is refused
// by Stop, which signals nothing, and by Status.
func TestPidfileOtherProgram(t *testing.T) {
	pid, alive := sleeper(t, "exec sleep 60")
	p := alpnproxy.Pidfile(filepath.Join(t.TempDir(), "nginx.pid"))
	if err := p.Write(pid); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Stop(t.Context(), 2*time.Second); err == nil || !strings.Contains(err.Error(), "is not an alpn-proxy (sleep 60)") {
		t.Errorf("Stop of another program's process = %v, want it refused, naming the program", err)
	}
	alive("another program's process named by the pidfile")
	if _, err := p.Status(); err == nil || !strings.Contains(err.Error(), "is not an alpn-proxy") {
		t.Errorf("Status = %v, want not running: not an alpn-proxy", err)
	}
}
