//go:build linux || darwin

package filestore

import "syscall"

// freeSpace returns the bytes this process may still write on the file
// system holding dir, and whether it could tell.
func freeSpace(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return uint64(st.Bavail) * uint64(st.Bsize), true
}
