package filestore_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/storagetest"
)

// Lease durations in tests: long enough that a renewal delayed by a loaded
// machine running -race does not lose a lease, short enough to wait for.
const (
	suiteTTL   = time.Second
	processTTL = time.Second
)

// openProcess is the storagetest.Opener of the process tests: config is
// the directory.
func openProcess(dir string) (storage.Storage, error) {
	return &filestore.Store{Dir: dir, LeaseTTL: processTTL}, nil
}

// envFullDir names the directory of a child that can create files but not
// write a byte into them; fullChild, where set (Linux), is that child of
// TestFullDisk.
const envFullDir = "CERTKEEPER_FILESTORE_FULL_DIR"

var fullChild func(dir string) int

func TestMain(m *testing.M) {
	if dir := os.Getenv(envAbandonDir); dir != "" {
		os.Exit(abandonChild(dir, os.Getenv(envAbandonLock)))
	}
	if dir := os.Getenv(envFullDir); dir != "" && fullChild != nil {
		os.Exit(fullChild(dir))
	}
	storagetest.Main(m, openProcess)
}

// The suites mostly wait for leases to expire: they run in parallel.

func TestConformance(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return &filestore.Store{Dir: t.TempDir(), LeaseTTL: suiteTTL}
	})
}

func TestProcesses(t *testing.T) {
	t.Parallel()
	storagetest.RunProcesses(t, storagetest.Backend{
		Open:     openProcess,
		Config:   t.TempDir(),
		LeaseTTL: processTTL,
		// A killed child is reaped before the parent locks: on Linux
		// its lease is taken over at once.
		TakesOverDead: runtime.GOOS == "linux",
	})
}

// TestConformanceNew runs the suite on a Store from New whose Dir is a
// symbolic link to an empty directory.
func TestConformanceNew(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		dir := t.TempDir()
		link := filepath.Join(dir, "link")
		if err := os.Symlink(t.TempDir(), link); err != nil {
			t.Fatal(err)
		}
		s := filestore.New(link)
		s.LeaseTTL = suiteTTL
		return s
	})
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions on Windows")
	}
	dir := filepath.Join(t.TempDir(), "store")
	s := filestore.New(dir)
	const key = "certificates/x/a.test.json"
	if err := s.Store(t.Context(), key, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(t.Context(), "issue/a.test")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	for _, tt := range []struct {
		path string
		want fs.FileMode
	}{
		{"", fs.ModeDir | 0o700},
		{"certificates", fs.ModeDir | 0o700},
		{"certificates/x", fs.ModeDir | 0o700},
		{key, 0o600},
		{".locks", fs.ModeDir | 0o700},
		{".locks/issue%2Fa.test", fs.ModeDir | 0o700},
	} {
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(tt.path)))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != tt.want {
			t.Errorf("mode of %q = %v, want %v", tt.path, got, tt.want)
		}
	}
	leases, err := filepath.Glob(filepath.Join(dir, ".locks", "issue%2Fa.test", "*.lease"))
	if err != nil || len(leases) != 1 {
		t.Fatalf("lease files = %q, %v; want one", leases, err)
	}
	fi, err := os.Stat(leases[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode(); got != 0o600 {
		t.Errorf("mode of %s = %v, want %v", leases[0], got, fs.FileMode(0o600))
	}
}

// TestLayout checks that keys are plain files operators can find, and that
// files certkeeper did not write as keys do not show up in List.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	s := filestore.New(dir)
	ctx := t.Context()
	const key = "certificates/x/a.test.json"
	if err := s.Store(ctx, key, []byte("v")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "certificates", "x", "a.test.json"))
	if err != nil || string(data) != "v" {
		t.Fatalf("reading the file of %q = %q, %v; want %q", key, data, err, "v")
	}
	// Left by a crash, by an operator, or not keys at all.
	for _, name := range []string{
		"certificates/x/.tmp-123", "certificates/.tmp-4", ".tmp-5", ".locks/x/y.lease",
		"certificates/x/bad.", "certificates/x/a:b",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "certificates", "x", "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "certificates/", "certificates/x/"} {
		got, err := s.List(ctx, prefix)
		if err != nil || !slices.Equal(got, []string{key}) {
			t.Errorf("List(%q) = %q, %v; want [%q]", prefix, got, err, key)
		}
	}
	if _, err := s.Load(ctx, "certificates/x/empty"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a directory = %v, want fs.ErrNotExist", err)
	}
	if err := s.Delete(ctx, "certificates/x/empty"); err != nil {
		t.Errorf("Delete of a directory = %v, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "certificates", "x", "empty")); err != nil {
		t.Errorf("Delete of a key naming a directory removed it: %v", err)
	}
}

func TestEmptyDir(t *testing.T) {
	var s filestore.Store
	ctx := t.Context()
	if _, err := s.Load(ctx, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load with no Dir = %v, want an error other than fs.ErrNotExist", err)
	}
	for name, err := range map[string]error{
		"Store":  s.Store(ctx, "k", nil),
		"Delete": s.Delete(ctx, "k"),
	} {
		if err == nil {
			t.Errorf("%s with no Dir = nil, want an error", name)
		}
	}
	if _, err := s.List(ctx, ""); err == nil {
		t.Error("List with no Dir = nil, want an error")
	}
	if _, err := s.Lock(ctx, "l"); err == nil {
		t.Error("Lock with no Dir = nil, want an error")
	}
}

// TestListErrorNamesPath: a directory List cannot read is named by its
// full path; the walk's own path (".", "sub") told an operator nothing.
func TestListErrorNamesPath(t *testing.T) {
	dir := t.TempDir()
	loop := filepath.Join(dir, "certificates")
	if err := os.Symlink(loop, loop); err != nil { // ELOOP, which even root cannot read through
		t.Fatal(err)
	}
	_, err := filestore.New(dir).List(t.Context(), "certificates/")
	if err == nil {
		t.Fatal("List through a symbolic link loop = nil, want an error")
	}
	if !strings.Contains(err.Error(), loop) || strings.Contains(err.Error(), "stat .:") {
		t.Errorf("List error = %q, want it to name %s", err, loop)
	}
}

func TestCanceledContext(t *testing.T) {
	s := filestore.New(t.TempDir())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Store(ctx, "k", []byte("v")); !errors.Is(err, context.Canceled) {
		t.Errorf("Store with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a canceled context = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a canceled context = %v, want context.Canceled", err)
	}
}

// renewFrame is the stack frame of a lock's renewal goroutine.
const renewFrame = "filestore.(*lease).renew("

func waitRenewers(t *testing.T, want int) { storagetest.WaitGoroutines(t, renewFrame, want) }

// TestRenewalGoroutineEnds checks that every lock's renewal goroutine ends
// when it is unlocked, and that unlock waits for it.
func TestRenewalGoroutineEnds(t *testing.T) {
	waitRenewers(t, 0) // other tests' locks are released
	// A lease long enough that a loaded machine (the race detector, other
	// test binaries) renews it in time: an expired lease ends its renewer
	// early, which is not what this test is about.
	s := &filestore.Store{Dir: t.TempDir(), LeaseTTL: time.Second}
	var unlocks []func()
	for _, name := range []string{"a", "b", "c/d"} {
		unlock, err := s.Lock(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		unlocks = append(unlocks, unlock)
	}
	waitRenewers(t, 3)
	time.Sleep(800 * time.Millisecond) // two renewals
	for _, unlock := range unlocks {
		unlock()
		unlock()
	}
	waitRenewers(t, 0)
	// Unlocking removes the lock directories that nobody else uses.
	entries, err := os.ReadDir(filepath.Join(s.Dir, ".locks"))
	if err != nil || len(entries) != 0 {
		t.Errorf(".locks holds %v, %v after every unlock; want nothing", entries, err)
	}
}

// logRecorder is a slog.Handler that keeps the records it handles.
type logRecorder struct {
	mu      sync.Mutex // guards records
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *logRecorder) has(level slog.Level, msg string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.records, func(r slog.Record) bool {
		return r.Level == level && strings.Contains(r.Message, msg)
	})
}

// TestLostLease removes a held lease behind its holder's back, as another
// process does once the lease has expired: the holder's renewal must stop,
// say so, and not recreate the lease; its unlock must not disturb the new
// holder.
func TestLostLease(t *testing.T) {
	logs := &logRecorder{}
	s := &filestore.Store{Dir: t.TempDir(), LeaseTTL: 300 * time.Millisecond, Logger: slog.New(logs)}
	unlock, err := s.Lock(t.Context(), "lost")
	if err != nil {
		t.Fatal(err)
	}
	leases, _ := filepath.Glob(filepath.Join(s.Dir, ".locks", "lost", "*.lease"))
	if len(leases) != 1 {
		t.Fatalf("lease files = %q, want one", leases)
	}
	if err := os.Remove(leases[0]); err != nil {
		t.Fatal(err)
	}
	unlock2, err := s.Lock(t.Context(), "lost")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock2()
	deadline := time.Now().Add(5 * time.Second)
	for !logs.has(slog.LevelError, "lock lease removed") {
		if time.Now().After(deadline) {
			t.Fatal("the holder of a removed lease did not log it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(leases[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the removed lease was recreated: %v", err)
	}
	unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if u, err := s.Lock(ctx, "lost"); err == nil {
		u()
		t.Fatal("the old holder's unlock released the new holder's lock")
	}
}

// TestTornLease takes over a lease file that a process died writing: it
// does not parse, so it expires a lease after it was last modified.
func TestTornLease(t *testing.T) {
	s := &filestore.Store{Dir: t.TempDir(), LeaseTTL: 300 * time.Millisecond}
	lockDir := filepath.Join(s.Dir, ".locks", "torn")
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(lockDir, "DEADBEEF.lease")
	if err := os.WriteFile(torn, []byte(`{"owner":"DEAD`), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	unlock, err := s.Lock(t.Context(), "torn")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("a freshly written torn lease was taken over after %v, want after its lease of 300ms", d)
	}
	if _, err := os.Stat(torn); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the torn lease is still there: %v", err)
	}
}

// TestSweepLocks: an expired lease (its holder died) and its empty
// directory are removed; a held lock is left alone.
func TestSweepLocks(t *testing.T) {
	s := &filestore.Store{Dir: t.TempDir(), LeaseTTL: 200 * time.Millisecond}
	unlock, err := s.Lock(t.Context(), "issue/live.test")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.LockAbandoned(t.Context(), "issue/dead.test"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // the abandoned lease expires; the live one is renewed
	n, err := s.SweepLocks(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("SweepLocks = %d, %v; want 1 removed", n, err)
	}
	entries, _ := os.ReadDir(filepath.Join(s.Dir, ".locks"))
	if len(entries) != 1 {
		t.Errorf("%d lock directories left, want 1 (the live lock)", len(entries))
	}
	// The live lock still excludes others.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, "issue/live.test"); err == nil {
		t.Error("took a lock that is still held after SweepLocks")
	}
}

// TestStoreVolatile: a volatile value is stored atomically like any other
// (the fsyncs it skips are not observable short of a power loss).
func TestStoreVolatile(t *testing.T) {
	ctx := context.Background()
	s := filestore.New(t.TempDir())
	var _ storage.VolatileStorer = s
	for _, v := range []string{"one", "two"} {
		if err := s.StoreVolatile(ctx, "challenges/tls-alpn-01/a.test", []byte(v)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, "challenges/tls-alpn-01/a.test")
		if err != nil || string(got) != v {
			t.Fatalf("Load after StoreVolatile(%q) = %q, %v", v, got, err)
		}
	}
	if err := s.StoreVolatile(ctx, "../x", nil); !errors.Is(err, storage.ErrInvalidKey) {
		t.Errorf("StoreVolatile(../x) = %v, want ErrInvalidKey", err)
	}
	keys, err := s.List(ctx, "challenges/")
	if err != nil || len(keys) != 1 {
		t.Errorf("List = %q, %v; want one key and no temporary file", keys, err)
	}
}

// TestCheck: Check creates an absent Dir and leaves nothing behind; a Dir
// that is a file, or (as a user, not root) one this process may not
// write, or a directory under it that it may not write, fails with the
// path named.
func TestCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s := filestore.New(dir)
	if err := s.Check(); err != nil {
		t.Fatalf("Check of an absent Dir: %v", err)
	}
	if err := s.Store(t.Context(), "certificates/k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("Check of a Dir in use: %v", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "certificates")} {
		if entries, _ := os.ReadDir(d); len(entries) != 1 {
			t.Errorf("%s holds %d entries after Check, want 1", d, len(entries))
		}
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := filestore.New(file).Check(); err == nil || !strings.Contains(err.Error(), file) {
		t.Errorf("Check of a file = %v, want an error naming it", err)
	}
	if runtime.GOOS == "windows" {
		t.Skip("permission cases: directory modes are Unix's")
	}
	for _, d := range []string{filepath.Join(dir, "certificates"), dir} {
		if err := os.Chmod(d, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(d, 0o700) })
		if f, err := os.CreateTemp(d, "probe"); err == nil {
			f.Close()
			t.Skipf("permission cases: euid %d (root) bypasses directory modes", os.Geteuid())
		}
		if err := s.Check(); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), d) {
			t.Errorf("Check with %s mode 0500 = %v, want fs.ErrPermission naming it", d, err)
		}
	}
}

// TestLoadRefusesOversize: a file larger than MaxValueSize under a key's
// name (here sparse: it takes no disk) is refused without being read,
// with an error wrapping storage.ErrInvalidRecord that names it; before,
// Load read it whole (a 700 MB file took 720 MB of memory in a
// handshake). A value of exactly MaxValueSize is still read, and Store
// refuses a larger one, which Load would refuse.
func TestLoadRefusesOversize(t *testing.T) {
	s := filestore.New(t.TempDir())
	key, err := storage.CertificateKey("local", "big.test")
	if err != nil {
		t.Fatal(err)
	}
	path, err := s.Path(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, filestore.MaxValueSize+1<<20); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = s.Load(t.Context(), key)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, storage.ErrInvalidRecord) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load of a file over MaxValueSize: %v, want an error wrapping storage.ErrInvalidRecord naming %s as too large", err, path)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("Load of a file over MaxValueSize allocated %d bytes", n)
	}
	if err := os.Truncate(path, filestore.MaxValueSize); err != nil {
		t.Fatal(err)
	}
	if data, err := s.Load(t.Context(), key); err != nil || len(data) != filestore.MaxValueSize {
		t.Errorf("Load of a file of MaxValueSize: %d bytes, %v", len(data), err)
	}
	if err := s.Store(t.Context(), key, make([]byte, filestore.MaxValueSize+1)); err == nil {
		t.Error("Store of a value over MaxValueSize succeeded")
	}
}
