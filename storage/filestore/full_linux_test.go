package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

func init() { fullChild = fullChildLinux }

// fullChildLinux runs with a file size limit of 0 bytes, as on a full
// disk: files are created, and writing into them fails (EFBIG here,
// ENOSPC on a full file system; Go ignores SIGXFSZ). It stores a new
// value over an existing one and takes a lock, both of which must fail,
// and prints what each returned.
func fullChildLinux(dir string) int {
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 0, Max: 0}); err != nil {
		fmt.Println("setrlimit:", err)
		return 3
	}
	s := &filestore.Store{Dir: dir, LeaseTTL: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("store:", s.Store(ctx, "certificates/ca/a.test.json", []byte(`{"new":true}`)))
	unlock, err := s.Lock(ctx, "issue/a.test")
	if err == nil {
		unlock()
	}
	fmt.Println("lock:", err)
	return 0
}

// TestFullDisk: a write that fails for want of space leaves the old value
// whole and nothing else behind: no temporary file, and no empty lease
// that would hold the lock for a whole lease once the space is freed (the
// next Lock, here with a lease of a minute, must get it at once).
func TestFullDisk(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &filestore.Store{Dir: dir, LeaseTTL: time.Minute}
	ctx := context.Background()
	if err := s.Store(ctx, "certificates/ca/a.test.json", []byte(`{"old":true}`)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envFullDir+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("full-disk child: %v\n%s", err, out)
	}
	for _, want := range []string{"store: ", "lock: "} {
		i := strings.Index(string(out), want)
		if i < 0 || strings.HasPrefix(string(out[i+len(want):]), "<nil>") {
			t.Errorf("child's %q did not fail:\n%s", want, out)
		}
	}

	if v, err := s.Load(ctx, "certificates/ca/a.test.json"); err != nil || string(v) != `{"old":true}` {
		t.Errorf("after the failed write: %q, %v; want the old value", v, err)
	}
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(path) != "a.test.json" {
			err = errors.New("left behind: " + path)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	unlock, err := s.Lock(lctx, "issue/a.test")
	if err != nil {
		t.Fatalf("the lock after the space came back: %v", err)
	}
	unlock()
}

// TestCheckReadOnly: Check on a read-only file system says so and what to
// do (a --storage outside a systemd unit's writable paths gets EROFS, not
// a permission error). Mounting needs root: skipped otherwise.
func TestCheckReadOnly(t *testing.T) {
	dir := mountTmpfs(t, syscall.MS_RDONLY)
	err := (&filestore.Store{Dir: dir}).Check()
	if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "remount "+dir+" read-write") {
		t.Errorf("Check on a read-only file system = %v; want EROFS saying to remount it", err)
	}
}

// TestCheckDurabilityFull: CheckDurability names a full file system, and
// nothing on one with room. Mounting needs root: skipped otherwise.
func TestCheckDurabilityFull(t *testing.T) {
	dir := mountTmpfs(t, 0)
	s := &filestore.Store{Dir: dir}
	if risks, err := s.CheckDurability(t.Context()); err != nil || len(risks) != 1 || !strings.Contains(risks[0], "free space") {
		t.Errorf("CheckDurability on 64 KiB = %q, %v; want the low space named", risks, err)
	}
	if risks, err := (&filestore.Store{Dir: t.TempDir()}).CheckDurability(t.Context()); err != nil || len(risks) != 0 {
		t.Logf("CheckDurability on the test's temporary directory = %q, %v (a nearly full disk?)", risks, err)
	}
}

// mountTmpfs mounts a 64 KiB tmpfs with flags on a temporary directory,
// unmounted at the test's end. Mounting needs root: run otherwise, the
// test is skipped (and fails under CI=true, as for any missing component).
func mountTmpfs(t *testing.T, flags uintptr) string {
	t.Helper()
	if os.Geteuid() != 0 {
		testsvc.Unavailable(t, "root", "run as root: the test mounts a small tmpfs", fmt.Errorf("euid %d", os.Geteuid()))
	}
	dir := t.TempDir()
	// mode: a tmpfs root is 1777 by default, a risk CheckDurability names.
	if err := syscall.Mount("tmpfs", dir, "tmpfs", flags, "size=64k,mode=0700"); err != nil {
		testsvc.Unavailable(t, "mounting a tmpfs", "run as root outside a container that forbids mount(2)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })
	return dir
}

// TestCheckHealthFull: CheckHealth fails on a full file system, where an
// empty file can still be created but no record written (a trial's full
// tmpfs answered healthy while every issuance failed); Check, which only
// creates empty files, passes there.
func TestCheckHealthFull(t *testing.T) {
	dir := mountTmpfs(t, 0)
	s := &filestore.Store{Dir: dir}
	if err := s.CheckHealth(t.Context()); err != nil {
		t.Fatalf("CheckHealth on an empty 64 KiB file system: %v", err)
	}
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for _, err = f.Write(make([]byte, 4096)); err == nil; _, err = f.Write(make([]byte, 4096)) {
	}
	f.Close()
	if err := s.CheckHealth(t.Context()); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("CheckHealth on a full file system = %v, want ENOSPC", err)
	}
}
