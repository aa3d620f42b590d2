//go:build unix

package filestore

import "syscall"

// openNonblock opens a named pipe without waiting for a writer (reading
// one is then refused, as it is not a regular file). It changes nothing
// for a regular file.
const openNonblock = syscall.O_NONBLOCK
