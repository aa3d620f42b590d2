// Package atomicfile replaces files so that a reader, or a process that
// dies at any point, sees the old content or the new one, never a part:
// the data goes to a temporary file in the same directory (a rename is
// atomic only within one file system), which is synced, given its final
// mode, renamed over the target, and the directory is synced so that the
// rename itself survives a power loss.
//
// It is the one implementation behind every file certkeeper writes in
// place: the file store's values, certificate files, deployed bundles,
// trust anchors, pidfiles and storage archives.
//
// What it does not do: it does not create directories, take locks (two
// writers of one path: the last rename wins, each file whole) or follow a
// symbolic link at path (the link is replaced by a file).
package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// Write replaces path with what write writes, atomically and durably, with
// mode (not subject to the umask). The io.Writer given to write is the
// temporary file; write's error is returned as it is, and leaves path
// untouched. Other errors are *fs.PathError (or *os.LinkError) naming the
// file involved. On any error the temporary file is removed.
func Write(path string, mode os.FileMode, write func(io.Writer) error) error {
	return replace(path, mode, noGroup, write, true)
}

// WriteFile is Write for data already in memory.
func WriteFile(path string, data []byte, mode os.FileMode) error {
	return replace(path, mode, noGroup, writeBytes(data), true)
}

// WriteFileGroup is WriteFile for a file another user's process reads
// through its group (a web server's workers): the file is given group gid
// before it is renamed into place, so no reader ever finds it with the
// wrong group. Changing a file's group needs POSIX ownership (not on
// Windows) and, for a user other than root, membership of the group.
func WriteFileGroup(path string, data []byte, mode os.FileMode, gid int) error {
	return replace(path, mode, gid, writeBytes(data), true)
}

// noGroup leaves a new file's group as the system gives it.
const noGroup = -1

// WriteFileVolatile is WriteFile without its two fsyncs (the file's and
// the directory's): still atomic, so a reader sees the old content or the
// new, but after a power loss path may hold either, or nothing new. For
// values that need not outlive a crash and must not cost a disk flush
// (the file store's StoreVolatile: challenge answers).
func WriteFileVolatile(path string, data []byte, mode os.FileMode) error {
	return replace(path, mode, noGroup, writeBytes(data), false)
}

// replace is the one sequence behind Write, WriteFile and
// WriteFileVolatile: temporary file, rename, and with durable the fsyncs.
func replace(path string, mode os.FileMode, gid int, write func(io.Writer) error, durable bool) error {
	tmp, err := temp(path, mode, gid, write, durable)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if !durable {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// TempFile writes data to a new temporary file beside path, with mode,
// synced and closed, and returns its name: the first half of WriteFile,
// for a caller that renames several files as one change (package certfile
// writes a key and its chain before renaming either). The caller renames
// it over path and calls SyncDir, or removes it.
func TempFile(path string, data []byte, mode os.FileMode) (string, error) {
	return temp(path, mode, noGroup, writeBytes(data), true)
}

// TempFileGroup is TempFile with group gid (as WriteFileGroup gives it);
// a negative gid is TempFile's.
func TempFileGroup(path string, data []byte, mode os.FileMode, gid int) (string, error) {
	if gid < 0 {
		gid = noGroup
	}
	return temp(path, mode, gid, writeBytes(data), true)
}

func writeBytes(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// temp writes a new temporary file beside path with what write writes,
// with mode and (unless gid is noGroup) group gid, closed (and synced if
// durable), and returns its name. Its name starts with
// "." and the base name of path, so that a file left by a crash says what
// it was, and scans that skip dot files (the file store's List) never see
// it.
func temp(path string, mode os.FileMode, gid int, write func(io.Writer) error, durable bool) (name string, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPattern(filepath.Base(path))) // mode 0600
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close() // a second Close only reports fs.ErrClosed
			os.Remove(f.Name())
		}
	}()
	// Chmod is not subject to the umask. Windows has no such modes.
	if err := f.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		return "", err
	}
	if gid != noGroup {
		if err := f.Chown(-1, gid); err != nil {
			return "", err
		}
	}
	if err := write(f); err != nil {
		return "", err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return "", err
		}
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// maxBase is the longest base name kept in a temporary file's name: with
// ".", ".tmp-" and CreateTemp's random digits it stays within the 255
// bytes most file systems allow in one file name.
const maxBase = 200

// tempPattern is the os.CreateTemp pattern of a temporary file for base.
func tempPattern(base string) string {
	if len(base) > maxBase {
		return ".tmp-*"
	}
	return "." + base + ".tmp-*"
}

// SyncDir makes the entries of dir (a rename, a new or removed file)
// durable. Windows cannot open a directory for syncing, and NTFS journals
// renames itself; a file system that cannot sync directories (EINVAL) is
// not an error either.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil
	}
	return err
}

// CanCreate checks that files can be created in dir, as a write would
// need, by creating and removing an empty one named by pattern (as
// os.CreateTemp takes it: a name its readers skip). Its error is the file
// system's, such as permission denied.
func CanCreate(dir, pattern string) error {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}
