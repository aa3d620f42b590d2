//go:build unix

package testsvc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ReadPID waits up to within for file to hold a process id and a newline
// (what "echo $! > FILE" of a test's hook writes) and returns it.
func ReadPID(t testing.TB, file string, within time.Duration) int {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		data, err := os.ReadFile(file)
		if s, ok := strings.CutSuffix(string(data), "\n"); err == nil && ok {
			pid, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || pid <= 0 {
				t.Fatalf("%s holds %q, not a process id", file, data)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no process id in %s within %s (%v)", file, within, err)
		}
	}
}

// WaitExited fails t unless process pid has ended within d. A zombie (ended,
// not yet reaped by the process that inherited it) has ended. A process
// still running then is killed, so that a failing test leaves none behind.
func WaitExited(t testing.TB, pid int, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ProcessRuns(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("process %d still runs %s later", pid, within)
			return
		}
	}
}

// ProcessRuns reports whether process pid exists and is not a zombie.
func ProcessRuns(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	// Linux: the state after the command's closing parenthesis; Z is a
	// zombie. Elsewhere (no /proc) signal 0 says enough.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) || !procMounted()
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// procMounted reports whether /proc lists processes (Linux).
func procMounted() bool {
	_, err := os.Stat("/proc/self/stat")
	return err == nil
}
