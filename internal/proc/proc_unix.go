//go:build unix

package proc

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownGroup starts c in a session of its own, and so in a process group of
// its own whose id is its pid, and has the end of its context kill that
// group.
//
// A session, not only a group (Setpgid): a group of its own is a
// background group of the terminal, and one of its processes that reads
// the terminal (sudo asking for a password) is stopped by SIGTTIN, until
// the context ends, unseen. Without a controlling terminal it fails at
// once, saying so ("a terminal is required"), as it does under cron or
// systemd, where cert renew runs hooks anyway.
func ownGroup(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Cancel = func() error {
		// SIGKILL, as exec.CommandContext sends to the process alone: a
		// command interrupted is not waited for.
		err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone // the group has ended already
		}
		return err
	}
}
