//go:build !unix && !windows

package proc

import "os/exec"

// ownGroup leaves c as exec.CommandContext made it: the end of its context
// kills the process alone (systems with neither process groups nor
// Windows' process snapshots: plan9, wasip1).
func ownGroup(*exec.Cmd) {}
