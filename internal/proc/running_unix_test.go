//go:build unix

package proc_test

import (
	"syscall"

	"github.com/certkeeper/certkeeper/internal/testsvc"
)

// running reports whether the process pid runs (a zombie has ended).
func running(pid int) bool { return testsvc.ProcessRuns(pid) }

// killPID ends pid, after a failed test.
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
