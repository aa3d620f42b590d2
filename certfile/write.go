package certfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"github.com/certkeeper/certkeeper/internal/fileowner"
)

// Directory and file modes. The key directory is private to its owner; the
// chain is public data that unprivileged server workers may need to read.
const (
	privateDirMode fs.FileMode = 0o700
	keyMode        fs.FileMode = 0o600
	certsDirMode   fs.FileMode = 0o755
	certMode       fs.FileMode = 0o644
)

// Write stores keyPEM and chainPEM (leaf first) as the files of the
// certificate for name, and returns their paths. It refuses a key that is
// not the leaf's (ErrKeyMismatch), a leaf that does not list name, and a
// chain holding anything but certificates.
//
// Each file is replaced atomically: written to a temporary file in the
// same directory, synced, renamed over the old one, and the directory
// synced. A reader sees the old file or the new one, never a mix; a
// symbolic link in place of a file is replaced, not followed.
//
// The pair cannot be replaced in one step, so the order is chosen to keep
// it consistent as long as possible. Both temporary files are written and
// synced before either is renamed, so a failure while writing (disk full,
// permissions) leaves the old pair as it was. Then the key is renamed and
// its directory synced, and only then the chain: after a crash the chain
// on disk is never newer than the key. If renaming the chain fails, the
// old key is put back. What remains is a crash between the two renames,
// or a reader between them, seeing the new key with the old chain: Read
// reports that as ErrKeyMismatch, and the next Write repairs it.
//
// Directories that do not exist are created with mode 0755 (DIR, certs/)
// and 0700 (private/); existing directories keep their modes (Debian's
// /etc/ssl/private is 0710 root:ssl-cert, on purpose). New files are 0600
// (key) and 0644 (chain), owned by the writing user; a file replaced keeps
// its group and its group-read bit (the chain its read bits), so a key
// made 0640 root:ssl-cert for a web server stays so.
func (d Dir) Write(name string, keyPEM, chainPEM []byte) (Paths, error) {
	p, err := d.Paths(name)
	if err != nil {
		return Paths{}, err
	}
	_, chain, err := parsePair(keyPEM, chainPEM)
	if err != nil {
		return Paths{}, fmt.Errorf("writing certificate files for %s: %w", name, err)
	}
	if !covers(chain[0], name) {
		return Paths{}, fmt.Errorf("writing certificate files for %s: the certificate does not list %s", name, name)
	}
	if err := d.mkdirs(p); err != nil {
		return Paths{}, fmt.Errorf("writing certificate files for %s: %w", name, err)
	}
	if err := replacePair(p, keyPEM, chainPEM); err != nil {
		return Paths{}, fmt.Errorf("writing certificate files for %s: %w", name, err)
	}
	return p, nil
}

// CheckWritable makes sure the files of name can be written, before a
// certificate is obtained for them (a CA's limits are spent on it): it
// creates the directories as Write would and a temporary file in each,
// removed at once; withKey false checks certs/ alone (WriteCert's). Its
// error is the file system's, such as permission denied.
func (d Dir) CheckWritable(name string, withKey bool) error {
	p, err := d.Paths(name)
	if err != nil {
		return err
	}
	dirs := []string{filepath.Dir(p.Cert)}
	if withKey {
		if err := d.mkdirs(p); err != nil {
			return err
		}
		dirs = append(dirs, filepath.Dir(p.Key))
	} else if err := os.MkdirAll(dirs[0], certsDirMode); err != nil {
		return err
	}
	for _, dir := range dirs {
		if err := atomicfile.CanCreate(dir, ".certkeeper-check-*"); err != nil {
			return err
		}
	}
	return nil
}

// CheckOwned refuses a directory whose files another user could have
// put or changed, before anything in it is read or run: DIR and, where
// they exist, DIR/private, DIR/certs and DIR/renewal must be directories
// that this user or root owns and that their group and others may not
// write, and the last three not symbolic links. A key found there is
// reused at renewal, a settings file's hooks run, and a file renamed
// into them replaced: run as root on an out-dir another user owned, cert
// renew had a planted key signed, copied /etc/shadow to a file that user
// could read, and ran that user's pre_hook (a security trial).
func (d Dir) CheckOwned() error {
	if err := OwnedDir(string(d)); err != nil {
		return err
	}
	for _, sub := range []string{"private", "certs", "renewal"} {
		if err := OwnedDir(filepath.Join(string(d), sub)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// OwnedDir refuses dir unless it is a directory that this user or root
// owns and that its group and others may not write; a symbolic link is
// refused unless it is this user's or root's (as /etc/ssl may link to
// another place) and leads to such a directory (POSIX only). A dir that
// does not exist is an error wrapping fs.ErrNotExist.
func OwnedDir(dir string) error {
	link, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if link.Mode()&fs.ModeSymlink != 0 {
		if err := ownedHere(dir+" (a symbolic link)", link, false); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return ownedHere(dir, fi, true)
}

// mkdirs creates DIR, DIR/private and DIR/certs where missing.
func (d Dir) mkdirs(p Paths) error {
	if err := os.MkdirAll(string(d), certsDirMode); err != nil {
		return err
	}
	if err := OwnedDir(string(d)); err != nil {
		return err
	}
	if err := mkdir(filepath.Dir(p.Key), privateDirMode); err != nil {
		return err
	}
	return mkdir(filepath.Dir(p.Cert), certsDirMode)
}

// mkdir creates dir with exactly mode (whatever the umask), or accepts an
// existing directory that only this user (or root) may write: in one
// another user may write, that user could put a key file of theirs in
// place, whose group the new key would take (tempLike), or links.
func mkdir(dir string, mode fs.FileMode) error {
	err := os.Mkdir(dir, mode)
	if err == nil {
		return os.Chmod(dir, mode)
	}
	if errors.Is(err, fs.ErrExist) {
		return OwnedDir(dir) // a link another user made is not followed
	}
	return err
}

// ownedHere refuses a directory (or, with modes false, a symbolic link)
// another user than this one or root owns, or that its group or others
// may write (POSIX only).
func ownedHere(dir string, fi fs.FileInfo, modes bool) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	if uid, ok := fileowner.UID(fi); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%s belongs to user %d: another user could plant files there that the new key would be given to; use a directory of this user's", dir, uid)
	}
	if modes && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s may be written by its group or others (mode %04o), who could plant files there that the new key would be given to: chmod go-w it", dir, fi.Mode().Perm())
	}
	return nil
}

// replacePair is the sequence Write documents.
func replacePair(p Paths, keyPEM, chainPEM []byte) (err error) {
	keyTmp, err := tempLike(p.Key, keyPEM, keyMode, 0o040) // a key never becomes readable by others
	if err != nil {
		return err
	}
	defer removeTemp(keyTmp, &err)
	certTmp, err := tempLike(p.Cert, chainPEM, certMode, 0o044)
	if err != nil {
		return err
	}
	defer removeTemp(certTmp, &err)

	oldKey, err := readPEM(p.Key)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keeping the old key for a rollback: %w", err)
	}
	if err := os.Rename(keyTmp, p.Key); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(p.Key)); err != nil {
		return errors.Join(err, restoreKey(p.Key, oldKey))
	}
	if err := os.Rename(certTmp, p.Cert); err != nil {
		return errors.Join(err, restoreKey(p.Key, oldKey))
	}
	return atomicfile.SyncDir(filepath.Dir(p.Cert))
}

// tempLike writes the temporary file that replaces path: a new file with
// mode; in place of a regular file, with mode's owner bits and those of
// keep the file has, and its group, as certbot keeps them: a key made 0640
// for a web server's group (Debian's ssl-cert) stays readable by it after
// a renewal. A group this user may not give (not root, not a member) is
// left out, and so are the group bits that would have let it read.
func tempLike(path string, data []byte, mode, keep fs.FileMode) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return atomicfile.TempFile(path, data, mode)
	}
	if uid, ok := fileowner.UID(fi); ok && uid != os.Geteuid() {
		return atomicfile.TempFile(path, data, mode) // another user's file: its group is not given the key
	}
	mode, gid := mode&0o700|fi.Mode().Perm()&keep, -1
	if g, ok := fileowner.GID(fi); ok && g != os.Getgid() {
		gid = g
	}
	name, err := atomicfile.TempFileGroup(path, data, mode, gid)
	if err != nil && gid >= 0 {
		return atomicfile.TempFile(path, data, mode&^0o070)
	}
	return name, err
}

// restoreKey puts the previous key back after the chain could not be
// replaced; with no previous key, it removes the new one.
func restoreKey(path string, old []byte) error {
	if old == nil {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing the new key: %w", err)
		}
		return nil
	}
	if err := atomicfile.WriteFile(path, old, keyMode); err != nil {
		return fmt.Errorf("restoring the old key (the key and certificate now differ): %w", err)
	}
	return nil
}

// removeTemp removes a temporary file that was not renamed. After a
// successful rename the name is gone, and so is the need.
func removeTemp(name string, err *error) {
	if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && *err == nil {
		*err = rerr
	}
}

// WriteFile replaces path with data atomically: a reader sees the old
// file or the new one, never a part, and after a crash one of them is on
// disk whole. The data is written to a temporary file beside path with
// mode, synced, renamed over path, and the directory synced.
func WriteFile(path string, data []byte, mode fs.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}
