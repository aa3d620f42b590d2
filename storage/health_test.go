package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// loadOnly is a storage without a HealthChecker (as Redis and
// PostgreSQL): Load answers err, and counts.
type loadOnly struct {
	storage.Storage
	err   error
	loads int
}

func (l *loadOnly) Load(context.Context, string) ([]byte, error) {
	l.loads++
	return nil, l.err
}

// TestCheckHealth: a storage without a HealthChecker is probed with one
// Load, whose absent key is the answer; one with it (filestore) with its
// own check, which a wrapper passes on.
func TestCheckHealth(t *testing.T) {
	refused := errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	for _, tt := range []struct {
		err, want error
	}{{fs.ErrNotExist, nil}, {refused, refused}} {
		st := &loadOnly{err: tt.err}
		if err := storage.CheckHealth(t.Context(), st); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) || st.loads != 1 {
			t.Errorf("CheckHealth with Load failing with %v = %v after %d loads, want %v after 1", tt.err, err, st.loads, tt.want)
		}
	}
	fst := filestore.New(t.TempDir())
	var hc storage.HealthChecker = fst
	if err := storage.CheckHealth(t.Context(), hc.(storage.Storage)); err != nil {
		t.Errorf("CheckHealth of a filestore = %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	under := filestore.New(filepath.Join(file, "dir"))
	if err := storage.CheckHealth(t.Context(), under); err == nil {
		t.Error("CheckHealth of a filestore under a file passed")
	}
	keys, err := encrypted.ParseKeys(encrypted.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.CheckHealth(t.Context(), encrypted.New(under, keys)); err == nil {
		t.Error("CheckHealth of an encrypted filestore under a file passed: the check is not passed on")
	}
}
