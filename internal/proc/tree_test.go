package proc_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/proc"
)

// The test binary is its own child program: with procTestRole set, TestMain
// runs that role instead of the tests.
const procTestRole = "CERTKEEPER_PROC_TEST_ROLE"

func TestMain(m *testing.M) {
	switch role := os.Getenv(procTestRole); {
	case role == "sleep":
		time.Sleep(60 * time.Second)
		os.Exit(0)
	case strings.HasPrefix(role, "parent:"):
		// Start a child that sleeps, say its pid, wait for it.
		c := exec.Command(os.Args[0])
		c.Env = append(os.Environ(), procTestRole+"=sleep")
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		if err := os.WriteFile(strings.TrimPrefix(role, "parent:"), []byte(strconv.Itoa(c.Process.Pid)), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		_ = c.Wait()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCancelKillsTree: ending the context of a command whose program
// started a child and waits for it kills that child too, on every system
// with process groups or process snapshots (unix, Windows). The programs
// are this test binary, so it needs no shell.
func TestCancelKillsTree(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := proc.Command(ctx, os.Args[0])
	c.Env = append(os.Environ(), procTestRole+"=parent:"+pidFile)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	child := readPID(t, pidFile, 10*time.Second)
	cancel()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("Wait of a cancelled command = nil, want it killed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return within 10s of the cancel")
	}
	for deadline := time.Now().Add(5 * time.Second); running(child); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			killPID(child)
			t.Fatalf("the child %d of a cancelled command still runs 5s after", child)
		}
	}
}

// readPID waits for file to hold a process id.
func readPID(t *testing.T, file string, within time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(file); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
	}
	t.Fatalf("no pid in %s within %s", file, within)
	return 0
}
