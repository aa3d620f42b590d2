//go:build unix

package hook

import (
	"bytes"
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

// TestEnvironDropsHookFlags: a hook runs without the CERTKEEPER_
// variables of hook flags, so that a certkeeper command it runs does not
// run the parent's hooks again (a trial's CERTKEEPER_POST_HOOK ran twice:
// as cert issue's, then as the deploy the hook ran); the others pass, and
// so does what the caller adds.
func TestEnvironDropsHookFlags(t *testing.T) {
	t.Setenv("CERTKEEPER_POST_HOOK", "echo again")
	t.Setenv("CERTKEEPER_ALERT_EXEC", "echo alert")
	t.Setenv("CERTKEEPER_STORAGE", "/data")
	t.Setenv("OTHER_HOOK", "kept")
	var out bytes.Buffer
	err := RunTo(t.Context(), &out, "the hook", `echo "post=$CERTKEEPER_POST_HOOK alert=$CERTKEEPER_ALERT_EXEC storage=$CERTKEEPER_STORAGE other=$OTHER_HOOK name=$CERTKEEPER_NAME"`,
		"CERTKEEPER_NAME=a.test")
	if err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "post= alert= storage=/data other=kept name=a.test") {
		t.Errorf("the hook saw %q", got)
	}
}
