//go:build !unix

package proc

import "os/exec"

// ownGroup leaves c as exec.CommandContext made it: the end of its context
// kills the process alone. (A Windows job object would take its children
// too; until then, what worked before is kept.)
func ownGroup(*exec.Cmd) {}
