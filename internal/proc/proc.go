// Package proc starts the programs certkeeper runs for the operator —
// hooks (internal/hook), the exec DNS provider's program, alpn-proxy's
// iptables — so that ending one, when its context ends, ends everything
// it started too.
//
// exec.CommandContext alone kills only the process it started: a hook's
// sh dies and its children (the "sleep 25" of "sleep 25; echo done", a
// curl its script runs) are orphaned and keep running after certkeeper
// exits. On unix a command here runs in a session, and so a process group,
// of its own, which the end of its context kills as a whole. Windows has
// no groups to signal: there the process and every process below it in a
// snapshot of the running ones are killed, as "taskkill /T /F" does. On
// other systems the process alone is killed, as exec.CommandContext does.
//
// A session of its own has no controlling terminal: a terminal's Ctrl-C
// reaches certkeeper, not the command, so certkeeper's signal handling
// must end the context the command runs under (cli.Main does); and the
// command cannot read the terminal (a password prompt fails at once, as
// under cron). It does not decide what runs or with which shell
// (internal/hook does), and a process that leaves the group itself
// (setsid, setpgid) is out of its reach.
package proc

import (
	"context"
	"os/exec"
	"time"
)

// WaitDelay is the WaitDelay of a Command: how long Wait waits, once the
// command has exited or been killed, for its output to end (a process it
// left running in the background may hold it) before closing it and
// returning.
const WaitDelay = 2 * time.Second

// Command returns the command that runs name with args (never through a
// shell), killed with every process it started when ctx ends, with
// WaitDelay set. A command that exits on its own leaves what it started in
// the background running (a pre-hook may start a server that way): only
// the end of ctx while it runs kills its group.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, name, args...)
	c.WaitDelay = WaitDelay
	ownGroup(c)
	return c
}
