//go:build unix

package proc_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/proc"
	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestCancelKillsGroup: ending the context of a command that started a
// child and waits for it kills the child too, not only the command.
func TestCancelKillsGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := proc.Command(ctx, "sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	child := testsvc.ReadPID(t, pidFile, 10*time.Second)
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
	testsvc.WaitExited(t, child, 5*time.Second)
}

// TestExitLeavesBackground: a command that exits on its own leaves what it
// started in the background running (a pre-hook starting a server), even
// when its context ends afterwards.
func TestExitLeavesBackground(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := proc.Command(ctx, "sh", "-c", `sleep 30 >/dev/null 2>&1 & echo $! > "$1"`, "sh", pidFile)
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	child := testsvc.ReadPID(t, pidFile, 10*time.Second)
	t.Cleanup(func() { _ = syscall.Kill(child, syscall.SIGKILL) })
	cancel()
	time.Sleep(200 * time.Millisecond)
	if !testsvc.ProcessRuns(child) {
		t.Errorf("the background process %d of a command that exited was killed when its context ended", child)
	}
}
