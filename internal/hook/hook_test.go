package hook

import (
	"errors"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the commands below are sh")
	}
	if err := Run(t.Context(), `test "$HOOK_TEST" = yes`, "HOOK_TEST=yes"); err != nil {
		t.Errorf("Run with its environment = %v, want nil", err)
	}
	err := Run(t.Context(), "echo broken >&2; exit 3")
	if _, ok := errors.AsType[*exec.ExitError](err); !ok || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Run of a failing command = %v, want an *exec.ExitError with its output", err)
	}
}
