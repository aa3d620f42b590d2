//go:build unix

package fileowner

import (
	"io/fs"
	"syscall"
)

// UID returns the user ID that owns fi's file, and false where files have
// no POSIX owner.
func UID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}

// GID returns the group ID of fi's file, and false where files have no
// POSIX group.
func GID(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Gid), true
}
