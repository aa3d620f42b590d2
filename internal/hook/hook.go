// Package hook runs the operator's hook commands (cert renew's
// --deploy-hook, deploy's --check-hook, the proxy's --alert-exec, ...)
// with the system shell: sh -c on unix, cmd /C on Windows, so that a hook
// is written as it would be typed.
//
// It exists so that every hook certkeeper runs goes through one shell
// choice and reports failures alike; it does not decide when hooks run
// (their callers do) or limit what they do: a hook runs with this
// process's privileges, which is why the files naming hooks are checked
// before they are read (certfile/renew).
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/certkeeper/certkeeper/internal/proc"
)

// Environ is the environment of a command certkeeper runs (a hook, an
// alert or DNS program): this process's, without the CERTKEEPER_
// variables of hook flags (CERTKEEPER_POST_HOOK, CERTKEEPER_ALERT_EXEC:
// names ending in _HOOK or _EXEC). Every flag may be given as a variable,
// and a certkeeper command a hook runs would take the parent's hooks as
// its own and run them again (a trial's post hook ran twice, and one that
// always changed something would not end).
func Environ() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "CERTKEEPER_") && (strings.HasSuffix(name, "_HOOK") || strings.HasSuffix(name, "_EXEC")) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// Command returns the command that runs command with the system shell,
// ended when ctx ends with every process it started (proc.Command: on unix
// the shell's session and process group), with Environ.
func Command(ctx context.Context, command string) *exec.Cmd {
	c := proc.Command(ctx, "sh", "-c", command)
	if runtime.GOOS == "windows" {
		c = proc.Command(ctx, "cmd", "/C", command)
	}
	c.Env = Environ()
	return c
}

// Run runs command with the system shell, with Environ plus env
// ("KEY=value" entries), and waits for it. A command that fails
// returns an error quoting it, with its combined output.
func Run(ctx context.Context, command string, env ...string) error {
	return RunTo(ctx, nil, "", command, env...)
}

// RunTo is Run that, when the command succeeds and printed something,
// writes that to w (if not nil), introduced as what's output and
// indented: an operator sees what a hook said, as certbot shows it.
func RunTo(ctx context.Context, w io.Writer, what, command string, env ...string) error {
	c := Command(ctx, command)
	c.Env = append(c.Env, env...)
	// A hook that leaves a process running in the background ("... &")
	// hands it its output: Command's WaitDelay (proc.WaitDelay) bounds
	// waiting for that output to end, which would wait for that process.
	out, err := c.CombinedOutput()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // the hook itself succeeded
		if w != nil {
			fmt.Fprintf(w, "certkeeper: %s left a process running in the background with its output; "+
				"redirect it (cmd >FILE 2>&1 &) so certkeeper can show what the hook printed\n", what)
		}
	}
	if err != nil {
		if msg := strings.TrimSpace(string(out)); msg != "" {
			return fmt.Errorf("%q: %w: %s", command, err, msg)
		}
		return fmt.Errorf("%q: %w", command, err)
	}
	if text := strings.TrimRight(string(out), "\r\n"); w != nil && text != "" {
		fmt.Fprintf(w, "certkeeper: %s printed:\n    %s\n", what, strings.ReplaceAll(text, "\n", "\n    "))
	}
	return nil
}
