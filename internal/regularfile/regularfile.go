// Package regularfile reads a file that someone else may have put in its
// place. os.ReadFile blocks for ever or reads without end on what anyone
// who can write the directory (or pass a path) may put there: a named pipe
// (opening it waits for a writer, reading it for data), a device (a
// symbolic link to /dev/zero), a socket, a huge or sparse file. Read opens
// the file without blocking (O_NONBLOCK, on Unix), refuses it unless it is
// a regular file, and refuses it if it is larger than its limit, before
// anything is read. Stored values (filestore), the --config file and the
// server's token file are read through it.
package regularfile

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// Error is Read's refusal of a file: not a regular file (Mode says what it
// is, a directory among them), or larger than Limit.
type Error struct {
	Path  string
	Mode  fs.FileMode
	Limit int64
}

func (e *Error) Error() string {
	if !e.Mode.IsRegular() {
		return e.Path + " is not a regular file but " + fileowner.Kind(e.Mode)
	}
	return fmt.Sprintf("%s is larger than %d bytes, the most allowed", e.Path, e.Limit)
}

// Read reads the file at path, at most limit bytes of it. A file that is
// not a regular one, or is larger than limit (a file growing while it is
// read is cut at limit+1 bytes and refused too), gives an *Error. A path
// that cannot be opened gives the open's error, but for a socket or a
// device without a driver (ENXIO), which gives an *Error saying what it
// is.
func Read(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|Nonblock, 0)
	if err != nil {
		if fi, serr := os.Stat(path); serr == nil && !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil, &Error{Path: path, Mode: fi.Mode()}
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &Error{Path: path, Mode: fi.Mode()}
	}
	if fi.Size() > limit {
		return nil, &Error{Path: path, Mode: fi.Mode(), Limit: limit}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &Error{Path: path, Mode: fi.Mode(), Limit: limit}
	}
	return data, nil
}
