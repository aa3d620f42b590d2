//go:build !unix

package fileowner

import "io/fs"

// UID reports no owner where files have no POSIX uid.
func UID(fs.FileInfo) (int, bool) { return 0, false }

// GID reports no group where files have no POSIX gid.
func GID(fs.FileInfo) (int, bool) { return 0, false }
