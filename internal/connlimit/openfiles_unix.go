//go:build unix

package connlimit

import "syscall"

// OpenFiles is how many file descriptors this process may open (the soft
// RLIMIT_NOFILE, which Go's runtime raises to the hard one at start), or 0
// when it cannot be read or is unlimited: what a listener's Max must fit
// in, with the process's other files.
func OpenFiles() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	// RLIM_INFINITY is the largest value of Cur's type, which differs
	// between systems (uint64 on Linux, int64 on FreeBSD).
	if n := uint64(rl.Cur); n < 1<<62 {
		return n
	}
	return 0
}
