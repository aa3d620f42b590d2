//go:build !unix

package regularfile

// Nonblock is no flag here: opening a file does not block on the
// systems that are not Unix.
const Nonblock = 0
