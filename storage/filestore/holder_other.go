//go:build !linux

package filestore

import "os"

// currentProcess returns the identity of this process: only its PID, for
// operators. Without a boot ID and a start time no successor can tell that
// it is gone, so its leases always run their course.
func currentProcess() process { return process{PID: os.Getpid()} }

// pidGone reports false: outside Linux nothing here tells a reused PID from
// the holder's.
func pidGone(int, uint64) bool { return false }
