package testsvc

import (
	"os/exec"
	"syscall"
)

// setProcAttr puts the child in a process group of its own, so that kill can
// reach anything it forks, and asks the kernel to SIGKILL it when its parent
// dies. Pdeathsig fires when the thread that started the child exits; the Go
// runtime only ends threads whose goroutine exits while locked to them, which
// tests do not do, so the signal comes when the test binary dies. Attributes
// the caller set (a Credential, say) are kept.
func setProcAttr(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// kill sends SIGKILL to the child's process group.
func kill(cmd *exec.Cmd) {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill() // the group is gone: kill the child alone
	}
}
