package status

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DirWhere returns a Printer.Where for a directory storage at dir: a
// damaged record is named by its storage key and its file, so that it can
// be restored or deleted. Certificate files ("file:" keys) are named by
// their key, which holds their path.
func DirWhere(dir string) func(key string) string {
	return func(key string) string {
		if strings.HasPrefix(key, "file:") {
			return key
		}
		return key + " (file " + filepath.Join(dir, filepath.FromSlash(key)) + ")"
	}
}

// CheckDir refuses dir as a directory storage to list when it does not
// exist, or it or a directory on its path is a file: that is a mistyped
// path, not a storage with nothing in it. The error says which, for the
// caller to name the setting that gave dir.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("the directory does not exist")
	case errors.Is(err, syscall.ENOTDIR) || err == nil && !fi.IsDir():
		return errors.New("it, or a directory on its path, is a file, not a directory")
	}
	return nil
}

// EmptyNote is what follows "no certificates in DIR" (Printer.Finish's
// note) for a directory storage at dir ("" for a storage at a URL): that
// the directory does not exist (a mistyped --storage, or, when defaultDir,
// the default of a user who stored nothing), that it or its path is a
// file, or how certificates get
// there.
func EmptyNote(dir string, defaultDir bool) string {
	if dir != "" {
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if defaultDir {
				return " (the directory does not exist: nothing was stored as this user; give --storage to read another)"
			}
			return " (the directory does not exist: is --storage right?)"
		case errors.Is(err, syscall.ENOTDIR) || err == nil && !fi.IsDir():
			return " (it, or a directory on its path, is a file, not a directory: is --storage right?)"
		}
	}
	return " (certificates appear here once proxy, server or cert issue obtains one with this storage)"
}
