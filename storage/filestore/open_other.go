//go:build !unix

package filestore

// openNonblock is no flag here: opening a file does not block on the
// systems that are not Unix.
const openNonblock = 0
