package filestore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/certkeeper/certkeeper/internal/fileowner"
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
	path string
	why  string
}

func (e *refusedError) Error() string { return e.path + " " + e.why }

// readRegular reads the file at path, at most limit bytes of it. Anyone
// who can write the directory can put there what os.ReadFile would block
// on for ever or read without end: a named pipe (opening it waits for a
// writer, reading it for data), a device (a symbolic link to /dev/zero),
// a socket, or a huge (possibly sparse) file. So the file is opened
// without blocking (O_NONBLOCK, on Unix), refused unless it is a regular
// file, and refused if it is larger than limit, before anything is read;
// a file growing while it is read is cut at limit+1 bytes and refused
// too. A refused file gives a *refusedError naming path; a directory
// does not exist (it is not a key).
func readRegular(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		// A socket, or a device without a driver, cannot be opened
		// (ENXIO): say what it is rather than why open failed.
		if fi, serr := os.Stat(path); !isNotExist(err) && serr == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil, irregular(path, fi.Mode())
		}
		return nil, notExistError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fs.ErrNotExist}
	}
	if !fi.Mode().IsRegular() {
		return nil, irregular(path, fi.Mode())
	}
	tooLarge := &refusedError{path: path, why: fmt.Sprintf("is larger than %d bytes, the most allowed; remove it", limit)}
	if fi.Size() > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}

// irregular is the error for the file at path of mode m, which is not a
// regular file.
func irregular(path string, m fs.FileMode) error {
	return &refusedError{path: path, why: "is not a regular file but " + fileowner.Kind(m) + "; remove it"}
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
