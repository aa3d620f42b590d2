package cli

import (
	"bytes"
	"net"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestInterruptExitStatus: SIGINT or SIGTERM while cert issue waits on a
// CA that never answers ends it with 128+the signal (130, 143) and
// "interrupted", as shells and curl do, not exit 1 with "context canceled".
func TestInterruptExitStatus(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send to a child process on Windows")
	}
	for _, tt := range []struct {
		sig  syscall.Signal
		want int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(tt.sig.String(), func(t *testing.T) {
			// A CA that accepts connections and never replies.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			accepted := make(chan net.Conn, 4)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()
			dir := t.TempDir()
			cmd := exec.CommandContext(t.Context(), binary, "cert", "issue", "--ca", "https://"+ln.Addr().String()+"/dir",
				"-d", "a.test", "--storage", dir+"/s", "--out-dir", dir+"/o")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case c := <-accepted: // working: waiting on the CA
				defer c.Close()
			case err := <-done:
				t.Fatalf("cert issue ended before it reached the CA: %v\n%s", err, stderr.String())
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("cert issue did not reach the CA within 30s")
			}
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("cert issue did not stop within 30s of %v", tt.sig)
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.want {
				t.Errorf("exit status %d after %v, want %d\nstderr:\n%s", code, tt.sig, tt.want, stderr.String())
			}
			if got := stderr.String(); !strings.Contains(got, "certkeeper cert issue: interrupted\n") || strings.Contains(got, "context canceled") {
				t.Errorf("stderr = %q, want \"certkeeper cert issue: interrupted\" and no \"context canceled\"", got)
			}
		})
	}
}

// startWatched starts cmd with its stderr kept, and returns that and a
// channel that gets cmd.Wait's result; the process is killed when the
// test ends.
func startWatched(t *testing.T, cmd *exec.Cmd) (*testsvc.Buffer, <-chan error) {
	t.Helper()
	stderr := &testsvc.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return stderr, done
}

// TestSecondSignalKills: a server draining a connection after SIGTERM
// (up to 10 s) is killed at once by a second SIGTERM, as an operator who
// presses Ctrl-C again expects.
func TestSecondSignalKills(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM to send to a child process on Windows")
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testsvc.FreePort(t)))
	cmd := exec.CommandContext(t.Context(), binary, "server", "--listen", addr, "--no-auth", "--storage", t.TempDir(), "--ca", "local")
	stderr, done := startWatched(t, cmd)
	waitFor := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stderr.String(), what); {
			select {
			case err := <-done:
				t.Fatalf("server exited (%v) before %q:\n%s", err, what, stderr.String())
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q within 30s:\n%s", what, stderr.String())
			}
		}
	}
	waitFor("server listening")
	// A request whose headers never end keeps the drain waiting.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: a.test\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server read it
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor("draining connections")
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the server still drains 5s after a second SIGTERM:\n%s", stderr.String())
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("after a second SIGTERM: %v in %v, want killed by SIGTERM", cmd.ProcessState, time.Since(start))
	}
}
