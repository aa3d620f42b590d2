package cli

import (
	"bytes"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
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
