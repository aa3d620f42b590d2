//go:build unix

package testsvc

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// userID is a user and group to run a child as.
type userID struct{ uid, gid uint32 }

// unprivileged returns the user nobody when running as root, and nil (run
// as ourselves) otherwise.
func unprivileged() (*userID, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, err
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of nobody: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of nobody: %w", err)
	}
	return &userID{uid: uint32(uid), gid: uint32(gid)}, nil
}

// runAs makes cmd run as id, if it is not nil, with no supplementary
// groups (an empty Groups makes setgroups drop root's).
func runAs(cmd *exec.Cmd, id *userID) {
	if id == nil {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: id.uid, Gid: id.gid, Groups: []uint32{}}
}

// interrupt sends SIGINT to p: a fast shutdown for postgres.
func interrupt(p *Process) { _ = syscall.Kill(p.Pid(), syscall.SIGINT) }
