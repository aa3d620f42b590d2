//go:build unix

package filestore_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCheckTwoLevels: Check fails on a directory two levels down that
// this process may not write, where certificates live
// (certificates/ISSUER/): a container trial's root-owned issuer directory
// failed every handshake for that CA while the start check, one level
// deep, passed. Run as nobody when root, whom modes do not stop.
func TestCheckTwoLevels(t *testing.T) {
	if testsvc.AsNobody(t) {
		return
	}
	dir := t.TempDir()
	s := filestore.New(dir)
	if err := s.Store(t.Context(), "certificates/ca/a.test.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	issuerDir := filepath.Join(dir, "certificates", "ca")
	if err := os.Chmod(issuerDir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(issuerDir, 0o700) })
	for name, check := range map[string]func() error{"Check": s.Check, "CheckHealth": func() error { return s.CheckHealth(t.Context()) }} {
		if err := check(); !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), issuerDir) {
			t.Errorf("%s with %s mode 0500 = %v, want fs.ErrPermission naming it", name, issuerDir, err)
		}
	}
}

// TestCheckWhileLocksComeAndGo: Check passes while locks are taken and
// released beside it: a lock's directory, two levels down, may vanish
// between its listing and the probe file (the server's health check
// failed on one in CI).
func TestCheckWhileLocksComeAndGo(t *testing.T) {
	s := filestore.New(t.TempDir())
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 300 {
			unlock, err := s.Lock(t.Context(), fmt.Sprintf("state/n%d", i%3))
			if err != nil {
				t.Error(err)
				return
			}
			unlock()
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		if err := s.Check(); err != nil {
			t.Fatalf("Check while locks come and go: %v", err)
		}
	}
}

// TestCheckDurabilityOthersWrite: a storage directory other users may
// change (a volume made 0777 so that a container's user could write it)
// is a risk CheckDurability names, with the chmod that ends it: they can
// put a key of their own in the place of one certkeeper serves. A sticky
// bit does not make it safe (it stops deletions, not new files); a
// directory of a group this process is in is its own.
func TestCheckDurabilityOthersWrite(t *testing.T) {
	dir := t.TempDir()
	s := filestore.New(dir)
	for _, tt := range []struct {
		mode fs.FileMode
		want string
	}{
		{0o700, ""},
		{0o770, ""}, // the test's own group
		{0o777, "other users may change " + dir + " (mode 0777)"},
		{0o1777, "other users may change " + dir},
		{0o703, "other users may change " + dir + " (mode 0703)"},
	} {
		if err := os.Chmod(dir, tt.mode); err != nil {
			t.Fatal(err)
		}
		risks, err := s.CheckDurability(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(risks, "; ")
		if tt.want == "" && strings.Contains(got, "may change") || tt.want != "" && (!strings.Contains(got, tt.want) || !strings.Contains(got, "chmod 700 "+dir)) {
			t.Errorf("mode %04o: risks %q, want %q", tt.mode, got, tt.want)
		}
	}
}
