//go:build unix

package regularfile

import "syscall"

// Nonblock is the os.OpenFile flag that opens a named pipe without
// waiting for a writer or a reader (Read then refuses it, as it is not a
// regular file). It changes nothing for a regular file.
const Nonblock = syscall.O_NONBLOCK
