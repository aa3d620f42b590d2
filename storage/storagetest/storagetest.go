// Package storagetest is the conformance suite of storage.Storage. Every
// backend's tests call Run, which checks, through the Storage interface
// alone, what package storage documents: round trips, absent keys, sorted
// and prefix-exact listing, atomic replacement under concurrent readers,
// refusal of unsafe keys, and the lock contract (mutual exclusion, leases
// that renew while held and expire when the holder dies, unlock releasing
// only its own lease, cancellation).
//
// What one process cannot show, RunProcesses shows with children re-executed
// from the test binary: two processes contending for a lock, a holder killed
// with SIGKILL, and a writer killed in the middle of writing. A backend whose
// tests call RunProcesses must call Main from TestMain.
//
// The suite is the contract in executable form: where it and the
// documentation of package storage disagree, one of them has a bug.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Abandoner is an optional interface of the storages that open returns.
// Run checks lease renewal and expiry only for storages that implement it;
// a backend usually implements it in an export_test.go file, since it is
// of use to tests only. RunProcesses checks expiry with a real process for
// every backend.
type Abandoner interface {
	// LeaseDuration is how long a lock lease lasts without renewal.
	LeaseDuration() time.Duration

	// LockAbandoned takes the lock called name as Lock does, then acts as
	// a holder that has died: it never renews nor releases the lease.
	LockAbandoned(ctx context.Context, name string) error
}

// invalidKeys are keys that every backend must refuse, with an error for
// which errors.Is(err, storage.ErrInvalidKey) is true, from Load, Store,
// Delete and Lock, and as prefixes from List when ValidatePrefix refuses
// them too.
var invalidKeys = []string{
	"", "..", "a/../b", "/abs", "a\\b", "a\x00b", "C:/x", "a//b",
	".", "./a", "a/.", "a/..", "..a", "a/", "/", "a\nb", ".hidden", "a.", "a\xffb",
}

// Timeouts bound every wait of the suite, so that a broken backend fails
// instead of hanging the test binary.
const (
	opTimeout   = 30 * time.Second // one whole subtest
	lockTimeout = 20 * time.Second // one Lock that must succeed
	// shortWait is how long a Lock that must not succeed is given.
	shortWait = 150 * time.Millisecond
)

// Run runs the conformance suite. open is called once per subtest and must
// return an empty storage, safe for concurrent use, whose resources are
// released by t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) storage.Storage) {
	t.Helper()
	for _, tt := range []struct {
		name string
		test func(*testing.T, storage.Storage)
	}{
		{"RoundTrip", testRoundTrip},
		{"Absent", testAbsent},
		{"List", testList},
		{"AtomicReplace", testAtomicReplace},
		{"InvalidKeys", testInvalidKeys},
		{"LockMutualExclusion", testLockMutualExclusion},
		{"LockNamespace", testLockNamespace},
		{"LockContext", testLockContext},
		{"UnlockOwnLeaseOnly", testUnlockOwnLeaseOnly},
		{"LeaseRenewal", testLeaseRenewal},
		{"LeaseExpiry", testLeaseExpiry},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.test(t, open(t))
		})
	}
}

// opContext returns t's context with the subtest timeout.
func opContext(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), opTimeout)
	t.Cleanup(cancel)
	return c
}

// randomBytes returns n bytes that depend only on seed.
func randomBytes(seed uint64, n int) []byte {
	r := rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 2: byte(seed >> 16), 3: byte(seed >> 24)})
	b := make([]byte, n)
	r.Read(b)
	return b
}

func mustStore(t *testing.T, s storage.Storage, key string, value []byte) {
	t.Helper()
	if err := s.Store(opContext(t), key, value); err != nil {
		t.Fatalf("Store(%q) = %v, want nil", key, err)
	}
}

func mustLoad(t *testing.T, s storage.Storage, key string) []byte {
	t.Helper()
	got, err := s.Load(opContext(t), key)
	if err != nil {
		t.Fatalf("Load(%q) = %v, want nil", key, err)
	}
	return got
}

func mustList(t *testing.T, s storage.Storage, prefix string) []string {
	t.Helper()
	got, err := s.List(opContext(t), prefix)
	if err != nil {
		t.Fatalf("List(%q) = %v, want nil", prefix, err)
	}
	return got
}

func testRoundTrip(t *testing.T, s storage.Storage) {
	for _, tt := range []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "k", []byte("hello")},
		{"nested", "certificates/acme-v02.api.letsencrypt.org-directory/a.test.json", []byte(`{"names":["a.test"]}`)},
		{"empty value", "empty", []byte{}},
		{"binary", "bin/a", []byte{0, 1, 0xff, '\n', '\r', 0, '/'}},
		{"large", "large/value", randomBytes(1, 1<<20)},
		{"unicode key", "accounts/x/bücher@a.test.json", []byte("ü")},
		{"wildcard", "certificates/x/wildcard_a.test.json", []byte("*")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			value := bytes.Clone(tt.value)
			mustStore(t, s, tt.key, value)
			clear(value) // the storage must not keep the caller's slice
			got := mustLoad(t, s, tt.key)
			if !bytes.Equal(got, tt.value) {
				t.Fatalf("Load(%q) = %d bytes %.20q, want %d bytes %.20q", tt.key, len(got), got, len(tt.value), tt.value)
			}
			clear(got) // nor hand out its own
			if got := mustLoad(t, s, tt.key); !bytes.Equal(got, tt.value) {
				t.Fatalf("Load(%q) after changing the previous result = %.20q, want %.20q", tt.key, got, tt.value)
			}

			replacement := append([]byte("replaced "), tt.value...)
			mustStore(t, s, tt.key, replacement)
			if got := mustLoad(t, s, tt.key); !bytes.Equal(got, replacement) {
				t.Fatalf("Load(%q) after replacing = %.20q, want %.20q", tt.key, got, replacement)
			}
			mustStore(t, s, tt.key, tt.value) // shorter again: no stale tail
			if got := mustLoad(t, s, tt.key); !bytes.Equal(got, tt.value) {
				t.Fatalf("Load(%q) after replacing back = %d bytes, want %d", tt.key, len(got), len(tt.value))
			}
		})
	}
}

func testAbsent(t *testing.T, s storage.Storage) {
	c := opContext(t)
	wantNotExist := func(key string) {
		t.Helper()
		got, err := s.Load(c, key)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load(%q) = %q, %v; want an error satisfying errors.Is(err, fs.ErrNotExist)", key, got, err)
		}
	}
	wantNotExist("never/stored")

	mustStore(t, s, "dir/key", []byte("v"))
	wantNotExist("dir")         // a prefix of a key is not a key
	wantNotExist("dir/key/sub") // nor is a path through one
	if err := s.Delete(c, "dir"); err != nil {
		t.Errorf("Delete(%q) = %v, want nil", "dir", err)
	}
	if got := mustLoad(t, s, "dir/key"); string(got) != "v" {
		t.Errorf("Load(%q) after Delete(%q) = %q, want %q", "dir/key", "dir", got, "v")
	}

	for i := range 2 {
		if err := s.Delete(c, "dir/key"); err != nil {
			t.Errorf("Delete(%q) #%d = %v, want nil", "dir/key", i+1, err)
		}
		wantNotExist("dir/key")
	}
	if err := s.Delete(c, "never/stored"); err != nil {
		t.Errorf("Delete(%q) = %v, want nil", "never/stored", err)
	}
	if got := mustList(t, s, ""); len(got) != 0 {
		t.Errorf("List(\"\") after deleting every key = %q, want none", got)
	}
}

func testList(t *testing.T, s storage.Storage) {
	if got := mustList(t, s, ""); len(got) != 0 {
		t.Fatalf("List(\"\") of an empty storage = %q, want none", got)
	}
	keys := []string{
		"a/2", "a/1", "a/b/3", "a/b/c/4", "ab/5", "a-1", "a.json", "b", "certificates/x/a.test.json",
		"certificates/x/wildcard_a.test.json", "certificates/y/a.test.json", "z",
	}
	for _, k := range keys {
		mustStore(t, s, k, []byte(k))
	}
	sorted := slices.Sorted(slices.Values(keys))
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", sorted},
		{"a/", []string{"a/1", "a/2", "a/b/3", "a/b/c/4"}},
		{"a", []string{"a-1", "a.json", "a/1", "a/2", "a/b/3", "a/b/c/4", "ab/5"}},
		{"a/b", []string{"a/b/3", "a/b/c/4"}},
		{"a/b/", []string{"a/b/3", "a/b/c/4"}},
		{"a/b/c/", []string{"a/b/c/4"}},
		{"a/1", []string{"a/1"}},
		{"ab/", []string{"ab/5"}},
		{"b", []string{"b"}},
		{"b/", nil},
		{"c/", nil},
		{"certificates/", []string{"certificates/x/a.test.json", "certificates/x/wildcard_a.test.json", "certificates/y/a.test.json"}},
		{"certificates/x/", []string{"certificates/x/a.test.json", "certificates/x/wildcard_a.test.json"}},
		{"certificates/x/a.", []string{"certificates/x/a.test.json"}},
		{"nothing/here/", nil},
	} {
		t.Run(tt.prefix, func(t *testing.T) {
			got := mustList(t, s, tt.prefix)
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}

	if err := s.Delete(opContext(t), "a/b/3"); err != nil {
		t.Fatalf("Delete(%q) = %v", "a/b/3", err)
	}
	if got, want := mustList(t, s, "a/b/"), []string{"a/b/c/4"}; !slices.Equal(got, want) {
		t.Errorf("List(%q) after Delete(%q) = %q, want %q", "a/b/", "a/b/3", got, want)
	}
}

// testAtomicReplace has writers alternate two large values while readers
// load in a loop: every Load must return one of them, whole.
func testAtomicReplace(t *testing.T, s storage.Storage) {
	const (
		key     = "certificates/x/atomic.test.json"
		writers = 2
		writes  = 15 // per writer
		readers = 4
	)
	values := [][]byte{randomBytes(10, 512<<10), randomBytes(11, 384<<10)}
	mustStore(t, s, key, values[0])
	c := opContext(t)

	var writing sync.WaitGroup
	stop := make(chan struct{})
	for w := range writers {
		writing.Go(func() {
			for i := range writes {
				if err := s.Store(c, key, values[(w+i)%2]); err != nil {
					t.Errorf("writer %d: Store(%q) = %v", w, key, err)
					return
				}
			}
		})
	}
	var reading sync.WaitGroup
	var loads atomic.Int64
	for r := range readers {
		reading.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Load(c, key)
				if err != nil {
					t.Errorf("reader %d: Load(%q) = %v", r, key, err)
					return
				}
				if !bytes.Equal(got, values[0]) && !bytes.Equal(got, values[1]) {
					t.Errorf("reader %d: Load(%q) = %d bytes that are neither value (%d or %d bytes): a torn write",
						r, key, len(got), len(values[0]), len(values[1]))
					return
				}
				loads.Add(1)
			}
		})
	}
	writing.Wait()
	close(stop)
	reading.Wait()
	t.Logf("%d loads during %d stores", loads.Load(), writers*writes)
}

func testInvalidKeys(t *testing.T, s storage.Storage) {
	c := opContext(t)
	for _, key := range invalidKeys {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, storage.ErrInvalidKey) {
					t.Errorf("%s(%q) = %v, want an error satisfying errors.Is(err, storage.ErrInvalidKey)", op, key, err)
				}
			}
			_, err := s.Load(c, key)
			check("Load", err)
			check("Store", s.Store(c, key, []byte("x")))
			check("Delete", s.Delete(c, key))
			unlock, err := s.Lock(c, key)
			check("Lock", err)
			if unlock != nil {
				t.Errorf("Lock(%q) returned an unlock func with error %v", key, err)
				unlock()
			}
			if key != "" && storage.ValidatePrefix(key) != nil {
				_, err := s.List(c, key)
				check("List", err)
			}
		})
	}
	if got := mustList(t, s, ""); len(got) != 0 {
		t.Errorf("List(\"\") after refused writes = %q, want none", got)
	}
}

// lockWithin tries to take the lock called name for at most d.
func lockWithin(t *testing.T, s storage.Storage, name string, d time.Duration) (unlock func(), err error) {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	return s.Lock(c, name)
}

// mustLock takes the lock called name or fails the test.
func mustLock(t *testing.T, s storage.Storage, name string) (unlock func()) {
	t.Helper()
	unlock, err := lockWithin(t, s, name, lockTimeout)
	if err != nil {
		t.Fatalf("Lock(%q) = %v, want nil", name, err)
	}
	return unlock
}

// wantLocked checks that the lock called name is held by someone else.
func wantLocked(t *testing.T, s storage.Storage, name string) {
	t.Helper()
	unlock, err := lockWithin(t, s, name, shortWait)
	if err == nil {
		unlock()
		t.Fatalf("Lock(%q) succeeded while the lock was held", name)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock(%q) with a deadline = %v, want context.DeadlineExceeded", name, err)
	}
}

func testLockMutualExclusion(t *testing.T, s storage.Storage) {
	const (
		name       = "issue/mutex.test"
		goroutines = 20
		iterations = 2
	)
	var inside, maxInside, entered atomic.Int32
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				unlock, err := lockWithin(t, s, name, lockTimeout)
				if err != nil {
					t.Errorf("goroutine %d: Lock(%q) #%d = %v", g, name, i+1, err)
					return
				}
				n := inside.Add(1)
				for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
				}
				entered.Add(1)
				time.Sleep(time.Millisecond) // give an overlap time to show
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if m := maxInside.Load(); m > 1 {
		t.Errorf("%d holders of %q at once, want at most 1", m, name)
	}
	if got, want := entered.Load(), int32(goroutines*iterations); got != want {
		t.Errorf("%d critical sections entered, want %d", got, want)
	}
}

// testLockNamespace checks that locks on different names are independent
// and that locks are not keys.
func testLockNamespace(t *testing.T, s storage.Storage) {
	unlockA := mustLock(t, s, "issue/a.test")
	defer unlockA()
	unlockB, err := lockWithin(t, s, "issue/b.test", 5*time.Second)
	if err != nil {
		t.Fatalf("Lock(%q) while holding %q = %v, want nil", "issue/b.test", "issue/a.test", err)
	}
	defer unlockB()
	unlockPrefix, err := lockWithin(t, s, "issue", 5*time.Second)
	if err != nil {
		t.Fatalf("Lock(%q) while holding %q = %v, want nil", "issue", "issue/a.test", err)
	}
	defer unlockPrefix()

	if got := mustList(t, s, ""); len(got) != 0 {
		t.Errorf("List(\"\") while holding locks = %q, want none", got)
	}
	mustStore(t, s, "issue/a.test", []byte("key, not lock"))
	if got := mustLoad(t, s, "issue/a.test"); string(got) != "key, not lock" {
		t.Errorf("Load(%q) = %q, want %q", "issue/a.test", got, "key, not lock")
	}
}

func testLockContext(t *testing.T, s storage.Storage) {
	const name = "issue/ctx.test"

	t.Run("canceled before", func(t *testing.T) {
		c, cancel := context.WithCancel(t.Context())
		cancel()
		unlock, err := s.Lock(c, "issue/free.test")
		if !errors.Is(err, context.Canceled) {
			if unlock != nil {
				unlock()
			}
			t.Fatalf("Lock with a canceled context = %v, want context.Canceled", err)
		}
	})

	unlock := mustLock(t, s, name)
	for _, tt := range []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled while waiting", func(c context.Context) (context.Context, context.CancelFunc) {
			c, cancel := context.WithCancel(c)
			time.AfterFunc(100*time.Millisecond, cancel)
			return c, cancel
		}, context.Canceled},
		{"deadline while waiting", func(c context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(c, 100*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, cancel := tt.ctx(t.Context())
			defer cancel()
			start := time.Now()
			u, err := s.Lock(c, name)
			if !errors.Is(err, tt.want) {
				if u != nil {
					u()
				}
				t.Fatalf("Lock(%q) held elsewhere = %v, want %v", name, err, tt.want)
			}
			// Polling may overshoot by one backoff step, not more.
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Lock(%q) returned %v after the context ended, want promptly", name, d)
			}
		})
	}
	unlock()
	// The waiters that gave up must have left nothing that holds the lock.
	mustLock(t, s, name)()
}

func testUnlockOwnLeaseOnly(t *testing.T, s storage.Storage) {
	const name = "issue/own.test"
	unlockA := mustLock(t, s, name)
	unlockA()
	unlockB := mustLock(t, s, name)
	defer unlockB()
	unlockA() // again, while B holds the lock
	wantLocked(t, s, name)
	unlockB()
	unlockB()
	mustLock(t, s, name)()
}

func abandoner(t *testing.T, s storage.Storage) Abandoner {
	t.Helper()
	a, ok := s.(Abandoner)
	if !ok {
		t.Skipf("%T does not implement storagetest.Abandoner; RunProcesses checks leases with a real process", s)
	}
	return a
}

// testLeaseRenewal holds a lock for more than two lease durations: the
// backend must renew the lease meanwhile.
func testLeaseRenewal(t *testing.T, s storage.Storage) {
	ttl := abandoner(t, s).LeaseDuration()
	const name = "issue/renewed.test"
	unlock := mustLock(t, s, name)
	defer unlock()
	deadline := time.Now().Add(2*ttl + ttl/2)
	for time.Now().Before(deadline) {
		wantLocked(t, s, name)
		time.Sleep(ttl / 4)
	}
}

// testLeaseExpiry checks that the lease of a holder that died expires
// after one lease duration, and not before.
func testLeaseExpiry(t *testing.T, s storage.Storage) {
	a := abandoner(t, s)
	ttl := a.LeaseDuration()
	const name = "issue/abandoned.test"
	start := time.Now()
	if err := a.LockAbandoned(opContext(t), name); err != nil {
		t.Fatalf("LockAbandoned(%q) = %v", name, err)
	}
	wantLocked(t, s, name)
	unlock, err := lockWithin(t, s, name, 3*ttl+5*time.Second)
	if err != nil {
		t.Fatalf("Lock(%q) after its holder died = %v, want nil within a lease (%v)", name, err, ttl)
	}
	defer unlock()
	// Lease expiry is measured on the wall clock; allow for its
	// granularity.
	if d := time.Since(start); d < ttl-10*time.Millisecond {
		t.Errorf("Lock(%q) succeeded %v after the holder took it, before its lease of %v expired", name, d, ttl)
	} else {
		t.Logf("lock taken over %v after the dead holder took it (lease %v)", d, ttl)
	}
}
