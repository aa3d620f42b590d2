package hook

import (
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the commands below are sh")
	}
	if err := Run(t.Context(), `test "$HOOK_TEST" = yes`, "HOOK_TEST=yes"); err != nil {
		t.Errorf("Run with its environment = %v, want nil", err)
	}
	var out strings.Builder
	if err := RunTo(t.Context(), &out, "the hook", "printf 'one\\ntwo\\n'"); err != nil || out.String() != "certkeeper: the hook printed:\n    one\n    two\n" {
		t.Errorf("RunTo of a command that prints = %v, wrote %q; want its lines indented under a heading", err, out.String())
	}
	out.Reset()
	if err := RunTo(t.Context(), &out, "the hook", "true"); err != nil || out.Len() != 0 {
		t.Errorf("RunTo of a silent command = %v, wrote %q; want nothing", err, out.String())
	}
	// A hook that leaves a process in the background holding its output
	// does not hold the run up.
	out.Reset()
	start := time.Now()
	if err := RunTo(t.Context(), &out, "the pre-hook", "echo started; sleep 10 &"); err != nil || time.Since(start) > 8*time.Second ||
		!strings.Contains(out.String(), "the pre-hook left a process running in the background") || !strings.Contains(out.String(), "    started\n") {
		t.Errorf("RunTo of a hook that backgrounds a process = %v after %s, wrote %q; want nil at once, a note and its output",
			err, time.Since(start).Round(time.Millisecond), out.String())
	}
	err := Run(t.Context(), "echo broken >&2; exit 3")
	if _, ok := errors.AsType[*exec.ExitError](err); !ok || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Run of a failing command = %v, want an *exec.ExitError with its output", err)
	}
}
