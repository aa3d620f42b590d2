package filestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/internal/regularfile"
	"github.com/certkeeper/certkeeper/storage"
)

// Lock file layout. The lock called NAME is the directory
// DIR/.locks/ESCAPED, where ESCAPED is NAME with every byte outside
// [a-z0-9._-] written as %XX ("issue/a.test" is "issue%2Fa.test"), or "~"
// and the SHA-256 of NAME when that would be too long for a file name.
// Escaping "/" keeps the lock directories flat; escaping upper case keeps
// names distinct on case-insensitive file systems.
//
// Each contender and the holder has one lease file in that directory,
// TOKEN.lease, where TOKEN is 128 random bits, holding a leaseRecord. The
// lock is held by the process whose lease file is the only one there.
//
// Why not one lease file per lock? Taking over an expired lease file means
// removing it only if it is still the expired one, and a file system has no
// compare-and-delete: two processes that both saw the expired lease could
// each remove it and the second would remove the first one's new lease.
// With the token in the file name, removing "the expired lease" removes
// exactly that lease and never a newer one. Mutual exclusion then comes
// from check-after-create: a contender creates its lease, then lists the
// directory, and holds the lock only if its lease is alone. Of two
// contenders, the one that created its lease second must see the first
// one's lease when it lists (a lease is only removed by its owner or once
// it has expired), so at most one holds the lock. Both may see each other
// and back off; the jittered backoff settles it.
//
// A lease also records its holder's process (see holder.go): a contender
// that can tell for sure that the holder is gone, on Linux on the same host
// and in the same PID namespace, removes the lease at once rather than when
// it expires. A dead holder holds nothing, so the argument above stands: a
// lease is removed only by its owner, once it has expired, or once its
// owner is gone.
//
// What a lease cannot do: a holder stopped for longer than LeaseTTL (a
// suspended VM, a debugger) loses its lease without knowing until its next
// renewal. Clocks of processes sharing Dir must agree.
const (
	locksDir        = ".locks"
	leaseExt        = ".lease"
	maxLockDirName  = 200 // well under the 255-byte limit of most file systems
	minLockBackoff  = 10 * time.Millisecond
	maxLockBackoff  = 500 * time.Millisecond
	minRenewalDelay = time.Millisecond
)

// leaseRecord is the content of a lease file.
type leaseRecord struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
	process           // the holder
}

// lease is one lock held by this process.
type lease struct {
	s       *Store
	name    string // the lock name
	dir     string // the lock directory
	path    string // our lease file
	token   string
	expires time.Time // of the lease as first written
	self    process   // this process, as its lease records it

	stop chan struct{} // closed by unlock
	done chan struct{} // closed when renew returns
	once sync.Once     // guards unlocking
}

// Lock blocks until it holds the lock called name, or ctx is done. It
// polls, backing off from 10 ms to 500 ms with jitter; it does not queue
// waiters fairly. The lease of a holder that died is taken over when it
// expires, or at once where this process can tell that the holder is gone:
// on Linux, for a holder on the same host and in the same PID namespace. While the lock is held a goroutine renews the lease
// every LeaseTTL/3; unlock stops it, waits for it to end, and removes the
// lease. unlock removes only this holder's lease, so calling it again, or
// after the lease expired and another process took the lock, releases
// nothing but its own.
func (s *Store) Lock(ctx context.Context, name string) (unlock func(), err error) {
	l, err := s.acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	go l.renew()
	return l.unlock, nil
}

// acquire takes the lock called name and returns its lease, not yet
// renewed.
func (s *Store) acquire(ctx context.Context, name string) (*lease, error) {
	if err := storage.ValidateKey(name); err != nil {
		return nil, fmt.Errorf("locking %q: %w", name, err)
	}
	if s.Dir == "" {
		return nil, fmt.Errorf("locking %s: %w", name, errNoDir)
	}
	l := &lease{
		s:     s,
		name:  name,
		dir:   filepath.Join(s.Dir, locksDir, lockDirName(name)),
		token: rand.Text(),
		self:  currentProcess(),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	l.path = filepath.Join(l.dir, l.token+leaseExt)
	if err := s.noLinks(l.path); err != nil {
		return nil, fmt.Errorf("locking %s: %w", name, err)
	}
	start := time.Now()
	backoff := minLockBackoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		held, err := l.try(s.leaseTTL())
		if err != nil {
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		if held {
			s.logger().Debug("lock acquired", slog.String("lock", name), slog.Duration("waited", time.Since(start)))
			return l, nil
		}
		// Jitter in [backoff/2, backoff): contenders that collided
		// retry at different times.
		t := time.NewTimer(backoff/2 + mathrand.N(backoff/2))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("locking %s: %w", name, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, maxLockBackoff)
	}
}

// try makes one attempt at taking the lock: it removes expired leases and
// those of holders known to be gone, gives up if another lease is live,
// else creates its own lease and keeps it only if it is then alone (see
// the layout comment).
func (l *lease) try(ttl time.Duration) (held bool, err error) {
	now := time.Now()
	entries, err := os.ReadDir(l.dir)
	if err != nil && !isNotExist(err) {
		return false, err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, leaseExt) || name == filepath.Base(l.path) {
			continue
		}
		path := filepath.Join(l.dir, name)
		rec, expires, err := readLease(path, ttl)
		if isNotExist(err) {
			continue // released meanwhile
		}
		if err != nil {
			return false, err
		}
		why := "expired"
		if now.Before(expires) {
			if !l.self.outlived(rec.process) {
				return false, nil
			}
			why = "holder gone"
		}
		// The owner died or stalled: remove exactly its lease. Another
		// contender may have removed it already.
		if err := os.Remove(path); err != nil && !isNotExist(err) {
			return false, err
		}
		l.s.logger().Debug("lock lease removed", slog.String("lock", l.name), slog.String("lease", name),
			slog.String("reason", why), slog.Int("pid", rec.PID))
	}

	l.expires = now.Add(ttl)
	rec := leaseRecord{Owner: l.token, Expires: l.expires, process: l.self}
	for attempt := 0; ; attempt++ {
		// Not synced: a lock needs no durability, its lease expires
		// and a crash ends its holder.
		if err := l.s.mkdirs(l.dir, false); err != nil {
			return false, err
		}
		err = writeLease(l.path, rec, true)
		if err == nil {
			err = l.s.giveBack(l.path)
		}
		// The directory may vanish between mkdirs and the create: a
		// holder removes it when it unlocks, if it is empty.
		if err == nil || !isNotExist(err) || attempt == 2 {
			break
		}
	}
	if isNotExist(err) {
		return false, nil // holders keep leaving as fast as we arrive: wait and try again
	}
	if err != nil {
		return false, err
	}
	defer func() {
		if !held {
			if rerr := os.Remove(l.path); rerr != nil && !isNotExist(rerr) && err == nil {
				err = rerr
			}
		}
	}()
	entries, err = os.ReadDir(l.dir)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, leaseExt) && name != filepath.Base(l.path) {
			return false, nil // another contender or holder: back off
		}
	}
	return true, nil
}

// renew extends the lease every LeaseTTL/3 until unlock.
func (l *lease) renew() {
	defer close(l.done)
	ttl := l.s.leaseTTL()
	tick := time.NewTicker(max(ttl/3, minRenewalDelay))
	defer tick.Stop()
	expires := l.expires
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		if !now.Before(expires) {
			// Another process may hold the lock by now; renewing would
			// resurrect a lease it has removed.
			l.s.logger().Error("lock lease expired before it was renewed; the lock may be held elsewhere",
				slog.String("lock", l.name), slog.Time("expired", expires))
			return
		}
		next := now.Add(ttl)
		err := writeLease(l.path, leaseRecord{Owner: l.token, Expires: next, process: l.self}, false)
		switch {
		case err == nil:
			expires = next
		case isNotExist(err):
			l.s.logger().Error("lock lease removed by another process; the lock may be held elsewhere",
				slog.String("lock", l.name))
			return
		default:
			l.s.logger().Warn("renewing lock lease", slog.String("lock", l.name),
				slog.Time("expires", expires), slog.Any("err", err))
		}
	}
}

// unlock stops the renewal and removes the lease. It is idempotent.
func (l *lease) unlock() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		if err := os.Remove(l.path); err != nil && !isNotExist(err) {
			// Handled here: unlock returns nothing, and the lease will
			// expire.
			l.s.logger().Warn("releasing lock lease", slog.String("lock", l.name), slog.Any("err", err))
			return
		}
		// Remove the lock directory if no one else is in it, so that
		// locks on names no longer used leave nothing behind. It fails,
		// as it should, if another contender has a lease there.
		_ = os.Remove(l.dir)
		l.s.logger().Debug("lock released", slog.String("lock", l.name))
	})
}

// writeLease writes rec to path: a new file if create (never replacing
// one), or else an existing one, so that a lease removed by another
// process is reported as not existing rather than recreated. A reader may
// see the file empty or half written; readLease copes.
//
// Leases are not synced: after a power loss every holder is gone anyway.
//
// A lease it created and could not write (a full disk: the file is made,
// its bytes are not) is removed again: left there, empty, it would hold
// the lock for a whole lease, against this process too, after the space
// is freed.
func writeLease(path string, rec leaseRecord, create bool) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	flag := os.O_WRONLY | os.O_TRUNC
	if create {
		flag = os.O_WRONLY | os.O_CREATE | os.O_EXCL
	}
	// O_NONBLOCK: renewing a lease file another process replaced with a
	// named pipe fails (ENXIO) rather than waiting for a reader for ever.
	f, err := os.OpenFile(path, flag|regularfile.Nonblock, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil && create {
		if rerr := os.Remove(path); rerr != nil && !isNotExist(rerr) {
			err = errors.Join(err, fmt.Errorf("removing the lease it could not write: %w", rerr))
		}
	}
	return err
}

// readLease reads the lease file at path and returns its record and
// expiry. A file that does not parse is being written (or its writer died
// while writing it): it expires ttl after it was last modified, and its
// record is empty (its holder unknown). A file that is not a regular
// file, or is larger than a lease can be, is refused with an error (see
// readRegular), not waited on.
func readLease(path string, ttl time.Duration) (leaseRecord, time.Time, error) {
	data, err := readRegular(path, maxLeaseSize)
	if err != nil {
		return leaseRecord{}, time.Time{}, err
	}
	var rec leaseRecord
	if err := json.Unmarshal(data, &rec); err == nil && !rec.Expires.IsZero() {
		return rec, rec.Expires, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return leaseRecord{}, time.Time{}, err
	}
	return leaseRecord{}, fi.ModTime().Add(ttl), nil
}

// lockDirName maps a valid lock name to one safe file name, one to one
// (see the layout comment).
func lockDirName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', c == '-', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > maxLockDirName {
		// "~" is escaped above, so a hashed name never equals an escaped
		// one.
		sum := sha256.Sum256([]byte(name))
		return "~" + hex.EncodeToString(sum[:])
	}
	return b.String()
}

// SweepLocks removes the leases of holders that died (expired lease files,
// and those of holders known to be gone, that nobody took over because
// nobody asked for that lock again) and lock directories left empty. It
// removes exactly the files it read, as a takeover does, so it never
// removes a live lease. It returns how many leases it removed.
func (s *Store) SweepLocks(ctx context.Context) (int, error) {
	root := filepath.Join(s.Dir, locksDir)
	dirs, err := os.ReadDir(root)
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("sweeping locks in %s: %w", root, err)
	}
	removed := 0
	now := time.Now()
	self := currentProcess()
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(root, d.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, f := range files {
			if !strings.HasSuffix(f.Name(), leaseExt) {
				continue
			}
			path := filepath.Join(dir, f.Name())
			rec, exp, err := readLease(path, s.leaseTTL())
			if err != nil || (now.Before(exp) && !self.outlived(rec.process)) {
				continue
			}
			if err := os.Remove(path); err == nil {
				removed++
			}
		}
		_ = os.Remove(dir) // only succeeds when empty
	}
	return removed, nil
}
