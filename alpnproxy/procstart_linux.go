//go:build linux

package alpnproxy

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat's start time: 100 on
// every architecture Go supports on Linux (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// processStart returns when process pid started, from /proc: the boot time
// (/proc/stat btime) plus the process's start time after boot
// (/proc/PID/stat field 22). It reports false when it cannot tell.
func processStart(pid int) (time.Time, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return time.Time{}, false
	}
	ticks, ok := parseStartTicks(stat)
	if !ok {
		return time.Time{}, false
	}
	boot, ok := bootTime()
	if !ok {
		return time.Time{}, false
	}
	return boot.Add(time.Duration(ticks) * (time.Second / clockTicks)), true
}

// parseStartTicks reads field 22 (starttime, in clock ticks after boot)
// of a /proc/PID/stat line. The second field, the command name in
// parentheses, may hold spaces and parentheses: the fields after it are
// counted from its last ')'.
func parseStartTicks(stat []byte) (uint64, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 { // f[0] is field 3
		return 0, false
	}
	ticks, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil || ticks > 1<<50 {
		return 0, false
	}
	return ticks, true
}

// bootTime is /proc/stat's btime.
func bootTime() (time.Time, bool) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

// otherProgram reports, from /proc, that process pid is not an alpn-proxy:
// neither this program's executable nor a command line naming alpn-proxy
// (a Go program running a Runner under another name is taken as one when
// it runs this executable). what is its command, for the error. An
// alpn-proxy trial's stop --pidfile, given nginx's pidfile, sent nginx
// SIGTERM. It reports false when it cannot tell.
func otherProgram(pid int) (what string, other bool) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(cmdline) == 0 {
		return "", false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if slices.Contains(args, "alpn-proxy") {
		return "", false
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil {
		if self, err := os.Executable(); err == nil && strings.TrimSuffix(exe, " (deleted)") == self {
			return "", false
		}
	}
	return strings.Join(args, " "), true
}
