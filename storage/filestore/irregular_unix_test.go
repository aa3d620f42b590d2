//go:build unix

package filestore_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// loadWithin runs s.Load(key), failing the test if it has not returned
// within d (it blocked: a named pipe waits for a writer).
func loadWithin(t *testing.T, s *filestore.Store, key string, d time.Duration) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := s.Load(context.Background(), key)
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-time.After(d):
		t.Fatalf("Load(%q) still blocks after %s", key, d)
		return nil, nil
	}
}

// unblockFIFO opens path for writing and closes it again, at the end of
// the test, so that a reader blocked on the named pipe (before the fix)
// sees its end and the test process can finish.
func unblockFIFO(t *testing.T, path string) {
	t.Cleanup(func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
}

// TestLoadRefusesIrregularFiles: a named pipe, a symbolic link to
// /dev/zero and a socket in the directory, under a key's name, are
// refused at once with an error that names the file as not a regular
// file and wraps storage.ErrInvalidRecord (callers report and skip it as
// a damaged record); before, Load blocked for ever on the pipe, and read
// /dev/zero until memory ran out (security trial: a storage writer hung
// every handshake for the name).
func TestLoadRefusesIrregularFiles(t *testing.T) {
	s := filestore.New(t.TempDir())
	dir := filepath.Join(s.Dir, "certificates", "local")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.test.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	unblockFIFO(t, fifo)
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.test.json")); err != nil {
		t.Fatal(err)
	}
	// A socket path must be short (108 bytes): listen in a short
	// directory and link to it.
	sockDir, err := os.MkdirTemp("", "fs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	ln, err := net.Listen("unix", filepath.Join(sockDir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Symlink(filepath.Join(sockDir, "s"), filepath.Join(dir, "sock.test.json")); err != nil {
		t.Fatal(err)
	}
	for name, kind := range map[string]string{"fifo.test": "named pipe", "zero.test": "character device", "sock.test": "socket"} {
		key, err := storage.CertificateKey("local", name)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second is not stuck behind the first
			_, err := loadWithin(t, s, key, 5*time.Second)
			if !errors.Is(err, storage.ErrInvalidRecord) {
				t.Errorf("Load(%s): %v, want an error wrapping storage.ErrInvalidRecord", key, err)
			}
			if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), kind) ||
				!strings.Contains(err.Error(), filepath.Join(dir, name+".json")) {
				t.Errorf("Load(%s): %v, want it to name the file as a %s, not a regular file", key, err, kind)
			}
		}
	}
	// List does not offer them (it lists regular files only), so scans
	// never reach them by listing.
	keys, err := s.List(t.Context(), "certificates/")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Errorf("List: %q, want none", keys)
	}
}

// TestLockRefusesIrregularLease: a named pipe in a lock's directory,
// named as a lease, fails Lock with an error naming it; before, Lock
// blocked for ever opening it.
func TestLockRefusesIrregularLease(t *testing.T) {
	s := filestore.New(t.TempDir())
	dir := filepath.Join(s.Dir, ".locks", "issue%2Fa.test")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "AAAA.lease")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	unblockFIFO(t, fifo)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		unlock, err := s.Lock(ctx, "issue/a.test")
		if err == nil {
			unlock()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), fifo) {
			t.Errorf("Lock: %v, want an error naming %s as not a regular file", err, fifo)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock still blocks on a named pipe after 5s")
	}
}
