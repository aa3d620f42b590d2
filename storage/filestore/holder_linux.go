package filestore

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// currentProcess returns the identity of this process, with only the PID
// if any part of it cannot be read.
func currentProcess() process {
	p := process{PID: os.Getpid()}
	// /proc must be this PID namespace's: in a namespace without its own
	// /proc mount, /proc/self and /proc/PID are other processes.
	if self, err := os.Readlink("/proc/self"); err != nil || self != strconv.Itoa(p.PID) {
		return p
	}
	data, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return p
	}
	_, start, ok := parseStat(data)
	if !ok {
		return p
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return p
	}
	pidNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return p
	}
	timeNS, err := os.Readlink("/proc/self/ns/time")
	if err != nil && !errors.Is(err, fs.ErrNotExist) { // absent before Linux 5.6
		return p
	}
	return process{PID: p.PID, Start: start, Boot: strings.TrimSpace(string(boot)), PIDNS: pidNS, TimeNS: timeNS}
}

// pidGone reports whether pid, in this PID namespace, no longer names the
// process that started at start (clock ticks after boot): no process has
// that PID, or a process that started at another time, or a zombie.
func pidGone(pid int, start uint64) bool {
	if pid <= 0 {
		return false // kill(0) and kill(-1) mean process groups
	}
	// kill(2) sees every process of the namespace, even where /proc hides
	// other users' processes (hidepid=2).
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// Exited since kill, or hidden from us: ask again.
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	state, st, ok := parseStat(data)
	switch {
	case !ok:
		return false
	case st != start:
		return true // the PID was reused
	case state == 'Z' || state == 'X':
		// Exited, not yet reaped by its parent; unless only its first
		// thread exited and others run (the state is the first
		// thread's), which leaves them listed in task/.
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		return err == nil && len(tasks) <= 1
	}
	return false
}

// parseStat returns the state (field 3) and start time (field 22) from the
// content of /proc/PID/stat. Field 2, the command name in parentheses, may
// itself hold spaces and parentheses: the fields after it start after the
// last ')'.
func parseStat(data []byte) (state byte, start uint64, ok bool) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(data[i+1:]))
	const stateField, startField = 3, 22
	if len(fields) <= startField-stateField || len(fields[0]) != 1 {
		return 0, 0, false
	}
	start, err := strconv.ParseUint(fields[startField-stateField], 10, 64)
	if err != nil || start == 0 {
		return 0, 0, false
	}
	return fields[0][0], start, true
}
