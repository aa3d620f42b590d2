// Package fileowner tells who owns a file, where files have POSIX owners:
// a pidfile or a renewal settings file another user wrote may name a
// process or a command for this user to act on, so their readers refuse
// files they do not own. It also tells whether every user may read one,
// for files that hold a secret, and names the kind of a file that is not
// regular (Kind), for readers that refuse those.
package fileowner

import (
	"io/fs"
	"os"
	"runtime"
)

// ReadableByAll reports whether every user of the host may read the file
// at path (mode o+r), with its permission bits; false where files have no
// POSIX modes, or path cannot be read. A secret in such a file is every
// local user's.
func ReadableByAll(path string) (fs.FileMode, bool) {
	if runtime.GOOS == "windows" {
		return 0, false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	return fi.Mode().Perm(), fi.Mode().Perm()&0o004 != 0
}

// ChangeableByOthers returns who besides this process's user and groups
// may change the file at path, or create, rename and delete files in the
// directory at path: "other users" (mode o+w; for a directory, sticky or
// not: a sticky bit stops deletions, not new files), "group NAME" for a
// group-writable one of a group this process is not in, or "" for no
// one, or where files have no POSIX modes (Windows), or when path cannot
// be read. A storage directory such a user may change is one whose keys
// and certificates they can replace with their own; a config file, one
// whose hooks they choose.
func ChangeableByOthers(path string) (mode fs.FileMode, who string) {
	if runtime.GOOS == "windows" {
		return 0, ""
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, ""
	}
	mode = fi.Mode().Perm()
	switch gid, ok := GID(fi); {
	case mode&0o002 != 0:
		return mode, "other users"
	case mode&0o020 != 0 && ok && !InGroup(gid):
		return mode, "group " + GroupName(gid)
	}
	return mode, ""
}

// Kind names the type of a file that is not a regular file, for an error
// that refuses it: "a named pipe (FIFO)", "a character device", ... (a
// storage directory or another tool's, where a planted FIFO would hang a
// reader and a device would never end).
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a file of type " + m.Type().String()
}
