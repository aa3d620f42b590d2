package certdeploy

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certkeeper/certkeeper/certfile"
)

// transaction replaces files one by one, each atomically, remembering
// what was there before so that rollback puts every file back as it was.
type transaction struct {
	dir  string
	undo []undo
}

// undo is one file's previous state: its content, or absent.
type undo struct {
	path   string
	old    []byte
	absent bool
}

func (t *transaction) changed() bool { return len(t.undo) > 0 }

// write replaces rel with data unless it already holds exactly that, and
// reports whether it wrote.
func (t *transaction) write(rel string, data []byte) (bool, error) {
	path := filepath.Join(t.dir, rel)
	old, err := os.ReadFile(path)
	absent := errors.Is(err, fs.ErrNotExist)
	if err != nil && !absent {
		return false, err
	}
	if !absent && bytes.Equal(old, data) {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	if err := writeAtomic(path, data); err != nil {
		return false, err
	}
	t.undo = append(t.undo, undo{path: path, old: old, absent: absent})
	return true, nil
}

// remove deletes rel, keeping its content for rollback.
func (t *transaction) remove(rel string) error {
	path := filepath.Join(t.dir, rel)
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	t.undo = append(t.undo, undo{path: path, old: old})
	return nil
}

// rollback restores every file in reverse order. It is best effort: a
// file that cannot be restored stays as the new version.
func (t *transaction) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.absent {
			_ = os.Remove(u.path)
		} else {
			_ = writeAtomic(u.path, u.old)
		}
	}
	t.undo = nil
}

func (t *transaction) commit() { t.undo = nil }

// writeAtomic writes data to path atomically (certfile.WriteFile), mode
// 0600: the files hold private keys.
func writeAtomic(path string, data []byte) error {
	return certfile.WriteFile(path, data, 0o600)
}
