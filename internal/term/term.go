// Package term tells whether a stream is a terminal, without a terminal
// library: certkeeper refuses to write archives holding private keys to a
// terminal, or to wait for one on stdin.
package term

import "os"

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
