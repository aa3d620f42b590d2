//go:build unix

package regularfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRead: a regular file within the limit is read; a named pipe (with
// no writer: os.ReadFile would wait for ever), a device, a directory and a
// file over the limit are refused at once, saying what they are.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	file, big, fifo := filepath.Join(dir, "f"), filepath.Join(dir, "big"), filepath.Join(dir, "fifo")
	if err := os.WriteFile(file, []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, make([]byte, 11), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := Read(file, 10); err != nil || string(data) != "ok" {
		t.Errorf("Read(regular) = %q, %v", data, err)
	}
	for path, want := range map[string]string{fifo: "named pipe", "/dev/null": "device", dir: "directory", big: "larger than 10 bytes"} {
		done := make(chan error, 1)
		go func() { _, err := Read(path, 10); done <- err }()
		select {
		case err := <-done:
			var rerr *Error
			if !errors.As(err, &rerr) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("Read(%s) = %v, want an *Error naming it and saying %q", path, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Read(%s) still blocks after 5 s", path)
		}
	}
	if _, err := Read(filepath.Join(dir, "absent"), 10); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Read(absent) = %v, want ErrNotExist", err)
	}
}
