//go:build windows

package proc

import (
	"errors"
	"os"
	"os/exec"
	"unsafe"

	"golang.org/x/sys/windows"
)

// ownGroup has the end of c's context kill c's process and every process
// it started that still runs under it (its children, theirs, ...), as
// "taskkill /T /F" does: Windows has no process group to signal. The tree
// is read from a snapshot of the running processes when the context ends;
// a process whose parent has already exited is out of reach (as one that
// leaves its group is on unix), and one is taken for a child only if it
// started after its parent, so that a reused process id does not make an
// unrelated process a target.
func ownGroup(c *exec.Cmd) {
	c.Cancel = func() error {
		killDescendants(uint32(c.Process.Pid))
		// The process itself last, as exec.CommandContext kills it: its
		// children's parent id stays its own until then.
		err := c.Process.Kill()
		if errors.Is(err, os.ErrProcessDone) {
			return os.ErrProcessDone
		}
		return err
	}
}

// killDescendants terminates every process below root in a snapshot of
// the running processes, the deepest first. Failures are ignored: a
// process may have exited meanwhile, and root is killed anyway.
func killDescendants(root uint32) {
	children := processChildren()
	var kill func(pid uint32, started windows.Filetime, depth int)
	kill = func(pid uint32, started windows.Filetime, depth int) {
		if depth > 64 { // a cycle of reused ids; no real tree is this deep
			return
		}
		for _, child := range children[pid] {
			h, err := windows.OpenProcess(windows.PROCESS_TERMINATE|windows.PROCESS_QUERY_LIMITED_INFORMATION, false, child)
			if err != nil {
				continue
			}
			if t, ok := creationTime(h); ok && !before(t, started) {
				kill(child, t, depth+1)
				_ = windows.TerminateProcess(h, 1)
			}
			windows.CloseHandle(h)
		}
	}
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, root)
	if err != nil {
		return
	}
	started, ok := creationTime(h)
	windows.CloseHandle(h)
	if ok {
		kill(root, started, 0)
	}
}

// processChildren maps each running process's id to those of the
// processes that name it as their parent.
func processChildren() map[uint32][]uint32 {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return nil
	}
	defer windows.CloseHandle(snap)
	children := map[uint32][]uint32{}
	pe := windows.ProcessEntry32{Size: uint32(unsafe.Sizeof(windows.ProcessEntry32{}))}
	for err = windows.Process32First(snap, &pe); err == nil; err = windows.Process32Next(snap, &pe) {
		if pe.ProcessID != pe.ParentProcessID {
			children[pe.ParentProcessID] = append(children[pe.ParentProcessID], pe.ProcessID)
		}
	}
	return children
}

// creationTime is when the process of h started.
func creationTime(h windows.Handle) (windows.Filetime, bool) {
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return windows.Filetime{}, false
	}
	return created, true
}

// before reports whether a is earlier than b.
func before(a, b windows.Filetime) bool {
	return a.HighDateTime < b.HighDateTime || a.HighDateTime == b.HighDateTime && a.LowDateTime < b.LowDateTime
}
