// Package fileowner tells who owns a file, where files have POSIX owners:
// a pidfile or a renewal settings file another user wrote may name a
// process or a command for this user to act on, so their readers refuse
// files they do not own. It also tells whether every user may read one,
// for files that hold a secret.
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
