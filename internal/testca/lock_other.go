//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package testca

import "time"

// lockFile does not lock where flock is missing: concurrent builds then
// repeat work, and the renames still keep every binary whole.
func lockFile(string, time.Duration) (unlock func(), err error) {
	return func() {}, nil
}
