// Package filestore keeps certkeeper's storage in a directory of the local
// file system. It is the default backend: it needs no server, survives
// crashes and power loss, and lets several processes on one host share
// certificates and locks.
//
// Each key is one file under Store.Dir ("certificates/x/a.test.json" is
// DIR/certificates/x/a.test.json), so operators can read, back up and
// remove what certkeeper stores with ordinary tools. Files are created 0600
// in 0700 directories: they hold private keys.
//
// Store replaces a file as the kernel guarantees it can be replaced
// atomically: the value is written to a temporary file in the key's
// directory, synced, renamed over the key's file, and the directory is
// synced. A reader or a process that dies at any point sees the old value
// or the new one, never a mix; once Store returns, the new value survives
// a power loss (package internal/atomicfile). Temporary files are named
// ".NAME.tmp-*"; a crash can leave one behind, and List and Load never see
// it (storage.ValidateKey refuses segments starting with ".", so no key
// can name it either).
//
// Locks are leases in DIR/.locks that record their holder's process, so
// that a process restarted after a crash takes over its predecessor's
// locks at once; see Store.Lock.
//
// What it does not do: it does not encrypt values, it does not follow
// symbolic links inside Dir when listing (Dir itself may be one), it does
// not remove directories that Delete leaves empty (a concurrent Store may
// be about to write into them), and it cannot hold both a key "a" and a
// key "a/b" (the keys certkeeper builds never need that). On
// case-insensitive file systems (macOS, Windows) keys that differ only in
// case are one file; the storage key builders only produce lower-case
// keys.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/internal/atomicfile"
	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/storage"
)

// DefaultLeaseTTL is the lease duration of a Store whose LeaseTTL is zero.
const DefaultLeaseTTL = 30 * time.Second

// Store is a storage.Storage on the local file system. Its methods are
// safe for concurrent use by multiple goroutines and by multiple processes
// sharing Dir.
//
// A Store holds no state besides its fields: &Store{Dir: dir} and
// New(dir) are the same, and two Stores with the same Dir share keys and
// locks. Fields must not change after first use.
type Store struct {
	// Dir is the directory that holds the keys. It is created, with mode
	// 0700, on the first Store or Lock. It must not be empty.
	Dir string

	// LeaseTTL is how long a lock lease lasts without renewal: a process
	// that dies holding a lock delays others by at most this long (on
	// Linux, a process on the same host and in the same PID namespace
	// takes the lock over at once; see Store.Lock). The holder renews its
	// lease every LeaseTTL/3. Zero means DefaultLeaseTTL. Processes
	// sharing Dir should agree on it.
	LeaseTTL time.Duration

	// Logger receives what lock holders cannot be told by an error: a
	// lease that could not be renewed or released. Nil means
	// slog.Default().
	Logger *slog.Logger

	ownerOnce sync.Once
	owner     *dirOwner // nil: files stay this process's
}

var _ storage.Storage = (*Store)(nil)

// dirOwner is the user and group that what a Store creates under Dir is
// given to.
type dirOwner struct{ uid, gid int }

// dirOwner returns, for a process running as root in a Dir another user
// owns (a `docker exec`, `sudo certkeeper ca root`, a root cron job on a
// service's storage), that user: what it creates there is given to them,
// as if they had written it. Root's 0600 files and 0700 directories were
// unreadable to the service that owns the storage (a container trial: a
// proxy that would not start, and one that served nothing). Nil when this
// process is not root, Dir is root's, or it does not exist yet.
func (s *Store) dirOwner() *dirOwner {
	s.ownerOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		fi, err := os.Stat(s.Dir)
		if err != nil {
			return
		}
		uid, ok := fileowner.UID(fi)
		gid, gok := fileowner.GID(fi)
		if ok && gok && uid != 0 {
			s.owner = &dirOwner{uid, gid}
		}
	})
	return s.owner
}

// giveBack gives path, just created, to Dir's owner (dirOwner), if any.
func (s *Store) giveBack(path string) error {
	o := s.dirOwner()
	if o == nil {
		return nil
	}
	if err := os.Lchown(path, o.uid, o.gid); err != nil {
		return fmt.Errorf("giving %s to the owner of %s (uid %d): %w", path, s.Dir, o.uid, err)
	}
	return nil
}

// New returns a Store keeping its files in dir, with the default lease
// duration. It is shorthand for &Store{Dir: dir}.
func New(dir string) *Store { return &Store{Dir: dir} }

func (s *Store) leaseTTL() time.Duration {
	if s.LeaseTTL > 0 {
		return s.LeaseTTL
	}
	return DefaultLeaseTTL
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// errNoDir is returned by every method of a Store without a Dir.
var errNoDir = errors.New("filestore: Store.Dir is empty")

// path is the file that holds key, which must have passed
// storage.ValidateKey: such a key has no "..", no leading "/", no "\" and
// no ":", so the result is always inside Dir.
func (s *Store) path(key string) (string, error) {
	if s.Dir == "" {
		return "", errNoDir
	}
	path := filepath.Join(s.Dir, filepath.FromSlash(key))
	return path, s.noLinks(path)
}

// noLinks refuses, for a process running as root in a Dir another user
// owns (dirOwner), a path under Dir through a symbolic link: that user
// could make one to any directory or file, and root would write there,
// giving what it wrote to them, or read a root-only file (a security
// trial had root replace a root file outside the storage, and the local
// CA's keys land there). Dir itself may be a link. Nil otherwise.
func (s *Store) noLinks(path string) error {
	if s.dirOwner() == nil {
		return nil
	}
	rel, err := filepath.Rel(s.Dir, path)
	if err != nil {
		return err
	}
	at := s.Dir
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		at = filepath.Join(at, part)
		fi, err := os.Lstat(at)
		if err != nil {
			return nil // not there yet: created as a directory, not followed
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link in %s, which another user owns: not followed when running as root; remove it", at, s.Dir)
		}
	}
	return nil
}

// Path returns the file that holds key (one storage.ValidateKey
// accepts), for messages that name the file a user may look at or
// remove.
func (s *Store) Path(key string) (string, error) {
	if err := storage.ValidateKey(key); err != nil {
		return "", err
	}
	return s.path(key)
}

// Load returns the value stored under key. An absent key returns an error
// that satisfies errors.Is(err, fs.ErrNotExist). A key whose file is not
// a regular file (a named pipe, a device, a socket, or a link to one) or
// is larger than MaxValueSize returns an error wrapping
// storage.ErrInvalidRecord that names the file, without blocking and
// without reading the file.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("loading %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	path, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	return data, nil
}

// Store writes value under key, replacing any previous value atomically
// and durably (see the package documentation). A value larger than
// MaxValueSize is refused.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	return s.store(ctx, key, value, true)
}

// StoreVolatile implements storage.VolatileStorer: it writes value under
// key as Store does (atomic replace, visible to every process sharing the
// directory on return) without the two fsyncs, so it costs no disk flush.
// After a power loss the key may hold its previous value or none.
func (s *Store) StoreVolatile(ctx context.Context, key string, value []byte) error {
	return s.store(ctx, key, value, false)
}

// store is Store, with the fsyncs when durable.
func (s *Store) store(ctx context.Context, key string, value []byte, durable bool) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("storing %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if len(value) > MaxValueSize {
		// Load would refuse it.
		return fmt.Errorf("storing %s: the value has %d bytes, more than the %d a stored value may have", key, len(value), MaxValueSize)
	}
	path, err := s.path(key)
	if err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if err := s.mkdirs(filepath.Dir(path), true); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	write := atomicfile.WriteFile
	if !durable {
		write = atomicfile.WriteFileVolatile
	}
	if err := write(path, value, 0o600); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	if err := s.giveBack(path); err != nil {
		return fmt.Errorf("storing %s: %w", key, err)
	}
	return nil
}

// Delete removes key. An absent key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("deleting %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	path, err := s.path(key)
	if err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	// A directory is not a key: do not remove it (os.Remove would, if it
	// were empty, under a concurrent Store into it).
	if fi, err := os.Lstat(path); err != nil || fi.IsDir() {
		if err == nil || isNotExist(err) {
			return nil
		}
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	if err := os.Remove(path); err != nil {
		if isNotExist(err) {
			return nil
		}
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// List returns the keys that start with prefix, sorted. It walks only the
// directory the prefix names and the subdirectories that can hold matching
// keys, and skips temporary files, lock leases and files whose names are
// not valid keys.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	if s.Dir == "" {
		return nil, fmt.Errorf("listing %q: %w", prefix, errNoDir)
	}
	// base is the directory part of prefix: "a/b/" for "a/b/c" and "a/b/".
	base := prefix[:strings.LastIndexByte(prefix, '/')+1]
	root := filepath.Join(s.Dir, filepath.FromSlash(base))
	// os.DirFS follows root if it is a symbolic link, as operators expect
	// of a data directory; filepath.WalkDir would not.
	var keys []string
	err := fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." && isNotExist(err) {
				return fs.SkipAll // nothing stored under base
			}
			// The walk names paths relative to root ("stat .:"): name
			// the file the operator can look at instead.
			if pe, ok := errors.AsType[*fs.PathError](err); ok {
				pe.Path = filepath.Join(root, filepath.FromSlash(pe.Path))
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		key := base + p
		if strings.HasPrefix(d.Name(), ".") { // temporary files, .locks
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(key, prefix) && storage.ValidateKey(key) == nil {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	slices.Sort(keys)
	return keys, nil
}

// Check reports whether this process may use Dir, before anything is
// stored: it creates Dir if absent (as Store would), creates and removes
// a temporary file in it and in each directory one or two levels under
// it, and lists them. A Dir owned by another user, or with a mode that
// keeps this one out, fails here (errors.Is(err, fs.ErrPermission), naming the
// path) rather than at the first Store or Lock. It does not read the
// files. On a read-only file system its error says so and what to do
// (errors.Is(err, syscall.EROFS) still holds).
func (s *Store) Check() error {
	if err := s.check(); errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%w: remount %s read-write, or choose a directory on a writable file system "+
			"(under systemd's ProtectSystem=strict, only StateDirectory= and the ReadWritePaths= of the unit are writable)", err, s.Dir)
	} else if err != nil {
		return err
	}
	return nil
}

// CheckHealth implements storage.HealthChecker with Check: a directory
// this process can no longer write (say, made root's by a command run as
// root) fails it, as it fails every Store there; so does a file system
// with less than healthSpace free, where an empty file can still be
// created but no record written (a trial's full tmpfs passed the check).
// ctx is not consulted: the file system calls cannot be interrupted.
func (s *Store) CheckHealth(context.Context) error {
	if err := s.Check(); err != nil {
		return err
	}
	if free, ok := freeSpace(s.Dir); ok && free < healthSpace {
		return fmt.Errorf("%s has %d bytes free: %w", s.Dir, free, syscall.ENOSPC)
	}
	return nil
}

// healthSpace is the free space under which CheckHealth fails: a
// certificate record and a lease file.
const healthSpace = 64 << 10

// check is Check without the advice. It tries Dir and the directories
// one and two levels under it: a certificate lives two levels down
// (certificates/ISSUER/NAME.json), and a root-owned ISSUER directory
// failed every handshake for that CA (a container trial).
func (s *Store) check() error {
	if err := s.mkdirs(s.Dir, true); err != nil {
		return err
	}
	dirs, level := []string{s.Dir}, []string{s.Dir}
	for range 2 {
		var next []string
		for _, parent := range level {
			entries, err := os.ReadDir(parent)
			if isNotExist(err) && parent != s.Dir {
				continue // a lock's directory, gone with its last holder
			} else if err != nil {
				return err
			}
			for _, e := range entries {
				if e.IsDir() {
					next = append(next, filepath.Join(parent, e.Name()))
				}
			}
		}
		dirs, level = append(dirs, next...), next
	}
	for _, dir := range dirs {
		err := atomicfile.CanCreate(dir, ".check.tmp-*") // List skips it
		if isNotExist(err) && dir != s.Dir {
			continue // removed since it was listed: a lock's directory, whose last holder left (a test saw the health check fail on one)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// lowSpace is the free space under which CheckDurability warns: a
// certificate record is a few kilobytes, a lease file a block.
const lowSpace = 1 << 20

// CheckDurability implements storage.DurabilityChecker: every write is
// synced, so the risks it reports are a file system that is (nearly)
// full, where new certificates and renewals cannot be stored (Linux and
// macOS), and a directory other users may change (a volume made 0777 so
// that a container's user could write it), where they can delete the
// certificates and keys or put their own in their place (POSIX systems).
func (s *Store) CheckDurability(ctx context.Context) ([]string, error) {
	var risks []string
	if mode, who := fileowner.ChangeableByOthers(s.Dir); who != "" {
		risks = append(risks, fmt.Sprintf("%s may change %s (mode %04o): they can delete its certificates and keys, or put their own in their place; "+
			"chmod 700 %s (the user certkeeper runs as owns it; nobody else needs access)", who, s.Dir, mode, s.Dir))
	}
	if free, ok := freeSpace(s.Dir); ok && free < lowSpace {
		risks = append(risks, fmt.Sprintf("the file system holding %s has %d KiB free: a certificate issued is kept only in memory "+
			"until it can be stored, and lost at a restart; free space (df -h %s)", s.Dir, free/1024, s.Dir))
	}
	return risks, nil
}

// mkdirs is os.MkdirAll with mode 0700 that also syncs the parent of every
// directory it creates, so that a key stored under a new directory is
// still reachable after a power loss. With durable false it does not sync
// the parent of dir itself (its own parents are still made durable): for
// lock directories, which need not outlive a crash (their holder does
// not), and which nothing durable is ever stored in.
// Each directory it creates is given to Dir's owner (giveBack).
func (s *Store) mkdirs(dir string, durable bool) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := s.mkdirs(parent, true); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			if err := s.giveBack(dir); err != nil {
				return err
			}
			break
		}
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil // created concurrently
		}
		// Created and removed again between Mkdir and Stat (a lock
		// directory whose last holder just left): try again.
		if !errors.Is(err, fs.ErrExist) || attempt == 2 {
			return err
		}
	}
	if !durable {
		return nil
	}
	return atomicfile.SyncDir(parent)
}

// isNotExist reports whether err says that a path does not exist, counting
// a path through a regular file ("a/b" when "a" is a file).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// notExistError returns err, made to satisfy errors.Is(err, fs.ErrNotExist)
// if isNotExist(err).
func notExistError(err error) error {
	if isNotExist(err) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w (%w)", fs.ErrNotExist, err)
	}
	return err
}
