//go:build !linux

package alpnproxy

import "time"

// processStart cannot tell when a process started outside Linux: it
// reports false, and a pidfile's process is taken as the proxy while it
// runs.
func processStart(pid int) (time.Time, bool) { return time.Time{}, false }

// otherProgram cannot tell outside Linux: the pidfile's process is taken
// as the proxy.
func otherProgram(pid int) (what string, other bool) { return "", false }
