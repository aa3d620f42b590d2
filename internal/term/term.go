// Package term checks certkeeper's standard streams: whether one is a
// terminal, without a terminal library (certkeeper refuses to write
// archives holding private keys to a terminal, or to wait for one on
// stdin), and makes a file a secret is written to private.
package term

import (
	"io/fs"
	"os"
	"runtime"
)

// MakePrivate makes v private to its owner if it is an *os.File that is a
// regular file group or others may use, before a secret is written to it
// ("certkeeper storage keygen > FILE" under umask 022 creates FILE 0644),
// and returns the modes before and after; from is 0 when nothing was to
// be done (a pipe, a terminal, /dev/null, a private file, or Windows,
// whose file modes do not carry these bits).
func MakePrivate(v any) (from, to fs.FileMode, err error) {
	f, ok := v.(*os.File)
	if !ok || runtime.GOOS == "windows" {
		return 0, 0, nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 == 0 {
		return 0, 0, nil
	}
	from, to = fi.Mode().Perm(), fi.Mode().Perm()&^0o077
	return from, to, f.Chmod(to)
}

// IsTerminal reports whether v is an *os.File that is a terminal: a
// character device other than the null device. It needs no terminal
// library, at the price of also reporting other character devices, which
// no one writes an archive to.
func IsTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}
