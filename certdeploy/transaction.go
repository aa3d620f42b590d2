package certdeploy

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/internal/regularfile"
)

// transaction replaces files one by one, each atomically, remembering
// what was there before so that rollback puts every file back as it was.
type transaction struct {
	dir  string
	perm perms
	made map[string]bool // directories given perm.dir in this transaction
	undo []undo
	// created are the directories this transaction made, in the order
	// made (a parent before its children), removed again by rollback.
	created []string
}

// perms are the modes and group of what a Deployer writes: this user's
// alone, or readable by a group (Deployer.Group).
type perms struct {
	file, dir fs.FileMode
	gid       int // -1: the group the system gives
}

// permsFor returns the perms for group, a name or a number ("" for
// none).
func permsFor(group string) (perms, error) {
	if group == "" {
		return perms{file: 0o600, dir: 0o700, gid: -1}, nil
	}
	gid, err := LookupGroup(group)
	if err != nil {
		return perms{}, fmt.Errorf("certdeploy: %w", err)
	}
	return perms{file: 0o640, dir: 0o750, gid: gid}, nil
}

// LookupGroup returns the ID of group, a name in the host's group
// database or a number, as Deployer.Group takes it, and checks that this
// process may give files that group (root may give any; another user only
// a group it is a member of), so that a program can check the setting
// before the first deployment.
func LookupGroup(group string) (gid int, err error) {
	if runtime.GOOS == "windows" {
		return 0, errors.New("a group for the files needs POSIX groups, which Windows does not have (the files take their directory's access control list)")
	}
	gid, err = strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if _, ok := errors.AsType[user.UnknownGroupError](lerr); ok {
			return 0, fmt.Errorf("no group %q on this host", group)
		} else if lerr != nil {
			return 0, fmt.Errorf("group %q: %w", group, lerr)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return 0, fmt.Errorf("group %q has ID %q: %w", group, g.Gid, err)
		}
	}
	if gid < 0 {
		return 0, fmt.Errorf("group %d: not a group ID", gid)
	}
	if os.Geteuid() == 0 || gid == os.Getegid() {
		return gid, nil
	}
	if groups, err := os.Getgroups(); err == nil && slices.Contains(groups, gid) {
		return gid, nil
	}
	who := strconv.Itoa(os.Geteuid())
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return 0, fmt.Errorf("this user (%s) is not a member of group %s, so it may not give files that group: add it to the group (usermod -aG; for a systemd service, SupplementaryGroups=), or deploy as root", who, group)
}

// fits reports whether the file fi already has p's mode and group.
func (p perms) fits(fi fs.FileInfo) bool {
	if runtime.GOOS == "windows" {
		return true
	}
	gid, ok := fileowner.GID(fi)
	return fi.Mode().Perm() == p.file && (p.gid < 0 || !ok || gid == p.gid)
}

// setDir gives the directory path mode and p's group.
func (p perms) setDir(path string, mode fs.FileMode) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if p.gid >= 0 {
		if err := os.Lchown(path, -1, p.gid); err != nil {
			return err
		}
	}
	return os.Chmod(path, mode)
}

// topDir makes the deployment's own directory, and with a group gives it
// that group and lets the group in (g+rx), keeping its other bits. An
// existing one must be this user's and writable by no one else (ownDir).
func (p perms) topDir(dir string) error {
	if err := os.MkdirAll(dir, p.dir); err != nil {
		return err
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := ownDir(dir, fi); err != nil {
		return err
	}
	if p.gid < 0 {
		return nil
	}
	return p.setDir(dir, fi.Mode().Perm()|0o050)
}

// ownDir refuses a directory of the deployment that another user owns or
// may write (fi is its Lstat or Stat): that user could put symbolic links
// in it that make a deployment, often run as root, change the modes of,
// remove or copy back files anywhere (a security trial's deploy
// chmodded and emptied a directory outside its out-dir), or a link in
// its place.
func ownDir(dir string, fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fmt.Errorf("%s is a symbolic link inside the deployment: remove it, deploy writes its own directories", dir)
	}
	if uid, ok := fileowner.UID(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s belongs to user %d, not to the user deploying: another user who can write it could plant links there; give it to this user (chown), or deploy to a directory of its own", dir, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s may be written by its group or others (mode %04o): they could plant links there; chmod go-w it", dir, fi.Mode().Perm())
	}
	return nil
}

// mkdir makes dir, a directory inside the deployment, with perm.dir and
// the group, once per transaction (an earlier deployment without the
// group left it 0700).
func (t *transaction) mkdir(dir string) error {
	if dir == t.dir || t.made[dir] {
		return nil
	}
	var missing []string // deepest first
	for d := dir; len(d) > len(t.dir); d = filepath.Dir(d) {
		if fi, err := os.Lstat(d); err == nil {
			if runtime.GOOS != "windows" {
				if err := ownDir(d, fi); err != nil {
					return err
				}
			}
			break
		}
		missing = append(missing, d)
	}
	if err := os.MkdirAll(dir, t.perm.dir); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		t.created = append(t.created, missing[i])
	}
	if err := t.perm.setDir(dir, t.perm.dir); err != nil {
		return err
	}
	if t.made == nil {
		t.made = map[string]bool{}
	}
	t.made[dir] = true
	return nil
}

// undo is one file's previous state: its content, or absent.
type undo struct {
	path   string
	old    []byte
	absent bool
}

func (t *transaction) changed() bool { return len(t.undo) > 0 }

// write replaces rel with data unless it already holds exactly that, and
// reports whether it wrote. A file with the same content but another mode
// or group is written again: a deployment that adds Group changes every
// file.
func (t *transaction) write(rel string, data []byte) (bool, error) {
	path := filepath.Join(t.dir, rel)
	old, err := readOld(path)
	absent := errors.Is(err, fs.ErrNotExist)
	if err != nil && !absent {
		return false, err
	}
	if err := t.mkdir(filepath.Dir(path)); err != nil {
		return false, err
	}
	if !absent && bytes.Equal(old, data) {
		if fi, err := os.Stat(path); err == nil && t.perm.fits(fi) {
			return false, nil
		}
	}
	if err := t.writeAtomic(path, data); err != nil {
		return false, err
	}
	t.undo = append(t.undo, undo{path: path, old: old, absent: absent})
	return true, nil
}

// readOld reads a file of a deployment, as it was before this one,
// through regularfile: a named pipe put in its place is refused at once,
// where opening it hung the deployment, SIGTERM and all (a security
// trial).
func readOld(path string) ([]byte, error) { return regularfile.Read(path, 1<<30) }

// remove deletes rel, keeping its content for rollback.
func (t *transaction) remove(rel string) error {
	path := filepath.Join(t.dir, rel)
	old, err := readOld(path)
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

// rollback restores every file in reverse order and removes the
// directories the transaction made, and reports whether any previous file
// was put back (false when every file was new). It is best effort: a file
// that cannot be restored stays as the new version.
func (t *transaction) rollback() (restored bool) {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.absent {
			_ = os.Remove(u.path)
		} else {
			_ = t.writeAtomic(u.path, u.old)
			restored = true
		}
	}
	for i := len(t.created) - 1; i >= 0; i-- {
		_ = os.Remove(t.created[i]) // only if empty: nothing else of anyone's is lost
	}
	t.undo, t.created = nil, nil
	return restored
}

func (t *transaction) commit() { t.undo, t.created = nil, nil }

// writeAtomic writes data to path atomically with t's mode and group:
// 0600, or 0640 in the group, as the files hold private keys.
func (t *transaction) writeAtomic(path string, data []byte) error {
	return atomicfile.WriteFileGroup(path, data, t.perm.file, t.perm.gid)
}
