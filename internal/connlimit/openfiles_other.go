//go:build !unix

package connlimit

// OpenFiles is 0: this system has no per-process limit on file
// descriptors to read (Windows' handles are bounded by memory).
func OpenFiles() uint64 { return 0 }
