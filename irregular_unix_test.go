//go:build unix

package certkeeper_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestStorageIrregularFileHandshake: a named pipe, or a sparse file over
// filestore.MaxValueSize, planted in a filestore directory under a name's
// certificate key no longer hangs that name's handshakes or reads the
// file whole (security trial: every handshake for the name hung, holding
// its connection, and a 700 MB file took 720 MB). The load refuses it as
// a damaged record, the warning names the file, and the name is issued
// anew, which replaces the file; two handshakes at once both get the
// certificate within seconds.
func TestStorageIrregularFileHandshake(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		plant      func(t *testing.T, path string) error
	}{
		{"fifo.pub.test", "not a regular file but a named pipe", func(t *testing.T, path string) error {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				return err
			}
			// Before the fix the load blocked on it: let it end with
			// the test, so that Close can.
			t.Cleanup(func() {
				if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
			})
			return nil
		}},
		{"big.pub.test", "larger than", func(t *testing.T, path string) error {
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				return err
			}
			return os.Truncate(path, filestore.MaxValueSize+1<<20)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := filestore.New(t.TempDir())
			var logs testsvc.Buffer
			m := localManager(t, st, policy.Allowlist("*.pub.test"))
			m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			key, err := storage.CertificateKey("local", tc.name)
			if err != nil {
				t.Fatal(err)
			}
			path, err := st.Path(key)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(t, path); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			errs := make(chan error, 2)
			for range 2 {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					_, err := m.CertificateFor(ctx, tc.name, netip.MustParseAddr("127.0.0.1"))
					errs <- err
				}()
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Errorf("CertificateFor(%s): %v", tc.name, err)
				}
			}
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > filestore.MaxValueSize/2 {
				t.Errorf("the handshakes allocated %d bytes", n)
			}
			if !strings.Contains(logs.String(), tc.want) || !strings.Contains(logs.String(), path) {
				t.Errorf("no warning naming %s (%q):\n%s", path, tc.want, logs.String())
			}
			if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() > filestore.MaxValueSize {
				t.Errorf("the planted file was not replaced by the new certificate: %v, %v", fi, err)
			}
		})
	}
}

// TestFlightWaitBounded: a handshake waiting for an issuance (its own
// flight, or another's it joined) stops waiting shortly after the issue
// timeout even if the issuance never returns and the handshake's context
// has no deadline (net/http's has none); before, it waited for ever,
// holding its connection (security trial: goroutines piled up against
// --max-conns long after the clients left). Here the issuance hangs in a
// Policy that ignores its context.
func TestFlightWaitBounded(t *testing.T) {
	release := make(chan struct{})
	hung := policy.Func(func(context.Context, string) error {
		<-release
		return nil
	})
	m := localManager(t, filestore.New(t.TempDir()), hung)
	m.IssueTimeout = time.Second
	t.Cleanup(func() { close(release) }) // before Close, which waits for the flight
	errs := make(chan error, 2)
	start := time.Now()
	for range 2 {
		go func() {
			_, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "hung.test"})
			errs <- err
		}()
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("GetCertificate: %v, want an error wrapping context.DeadlineExceeded", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("a handshake still waits for a hung issuance 15s after it began, with an issue timeout of 1s")
		}
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("the handshakes took %s, with an issue timeout of 1s", took)
	}
}
