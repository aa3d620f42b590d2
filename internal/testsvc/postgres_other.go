//go:build !unix

package testsvc

import "os/exec"

// userID is a user and group to run a child as; unused off Unix.
type userID struct{ uid, gid uint32 }

// unprivileged returns nil: off Unix, children run as ourselves.
func unprivileged() (*userID, error) { return nil, nil }

func runAs(*exec.Cmd, *userID) {}

// interrupt does nothing off Unix; the process is killed by its cleanup.
func interrupt(*Process) {}
