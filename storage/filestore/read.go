package filestore

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/certkeeper/certkeeper/internal/regularfile"
	"github.com/certkeeper/certkeeper/storage"
)

// MaxValueSize is the most bytes a stored value may have: Load refuses a
// larger file without reading it, and Store refuses a larger value. The
// largest values certkeeper stores are far smaller: a certificate record
// (chain and private key) is a few kilobytes, as are an account and the
// local CA; the biggest is the limit state (storage.StateKey("limits")),
// with at most 10,000 names in each of its two backoff maps, a few
// megabytes at worst. 16 MiB leaves a margin for all of them while a file
// planted in the directory (or a sparse one of any apparent size) cannot
// make a Load use more memory than that.
const MaxValueSize = 16 << 20

// maxLeaseSize is the most bytes of a lease file read: a lease record is
// a few hundred bytes.
const maxLeaseSize = 64 << 10

// refusedError is the error of readRegular for a file it refuses to read:
// one that is not a regular file, or is larger than allowed.
type refusedError struct {
	err *regularfile.Error
}

func (e *refusedError) Error() string { return e.err.Error() + "; remove it" }

// readRegular reads the file at path, at most limit bytes of it, without
// blocking on what anyone who can write the directory may put there
// (package regularfile). A refused file gives a *refusedError naming
// path; a directory does not exist (it is not a key).
func readRegular(path string, limit int64) ([]byte, error) {
	data, err := regularfile.Read(path, limit)
	if rerr, ok := errors.AsType[*regularfile.Error](err); ok {
		if rerr.Mode.IsDir() {
			return nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
		}
		return nil, &refusedError{rerr}
	}
	if err != nil {
		return nil, notExistError(err)
	}
	return data, nil
}

// readFile reads a stored value: a file that does not exist, a directory,
// or a path through a file ("a/b" when "a" is a file) does not exist
// (neither is a key), and a file readRegular refuses gives an error
// wrapping storage.ErrInvalidRecord, so that callers report it and skip
// it as they do a damaged record.
func readFile(path string) ([]byte, error) {
	data, err := readRegular(path, MaxValueSize)
	if _, ok := errors.AsType[*refusedError](err); ok {
		return nil, fmt.Errorf("%w (%w)", err, storage.ErrInvalidRecord)
	}
	return data, err
}
