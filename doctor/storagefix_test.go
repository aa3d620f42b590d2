package doctor

import (
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestStorageFix: a storage that cannot store for want of space, or
// because its file system is read-only, is told to free space or remount,
// not to change its owner (trial 28).
func TestStorageFix(t *testing.T) {
	for errno, want := range map[syscall.Errno]string{
		syscall.ENOSPC: "free space",
		syscall.EROFS:  "remount",
		syscall.EACCES: "writable by certkeeper's user",
	} {
		err := &fs.PathError{Op: "write", Path: "/var/lib/certkeeper/state/.doctor.json.tmp-1", Err: errno}
		if got := storageFix(err); !strings.Contains(got, want) {
			t.Errorf("storageFix(%v) = %q, want it to say %q", err, got, want)
		}
	}
}
