//go:build unix

package hook

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// TestCancelKillsHookChildren: a hook killed because its context ended
// (an interrupt, a timeout) takes the processes it started with it: the
// sleep of a pre-hook does not outlive certkeeper. Its error quotes the
// hook and how it ended, without an empty ": " for the output it did
// not print.
func TestCancelKillsHookChildren(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	command := `sleep 30 & echo $! > "$PID_FILE"; wait`
	done := make(chan error, 1)
	go func() { done <- Run(ctx, command, "PID_FILE="+pidFile) }()
	child := testsvc.ReadPID(t, pidFile, 10*time.Second)
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of the cancel")
	}
	testsvc.WaitExited(t, child, 5*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), strconv.Quote(command)+": ") || !strings.Contains(err.Error(), "killed") ||
		strings.HasSuffix(err.Error(), ": ") {
		t.Errorf("Run of a hook killed = %v, want its command and how it ended, and no trailing separator", err)
	}
}
