//go:build !unix

package migrate

// openNonblock is not needed where there are no FIFOs in the file system.
const openNonblock = 0
