package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/archive"
)

// copyingStore is memStore whose Load returns a copy of the value, as a
// real backend does: a caller that keeps what it loads keeps memory.
type copyingStore struct{ memStore }

func (s *copyingStore) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.memStore.Load(ctx, key)
	return bytes.Clone(v), err
}

// digestStore keeps only the SHA-256 digest of each value stored, so that
// an import into it holds no value once stored.
type digestStore struct {
	memStore
	mu   sync.Mutex
	sums map[string][sha256.Size]byte
}

var errNotKept = errors.New("digestStore keeps no values")

func (s *digestStore) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sums[key]; ok {
		return nil, errNotKept
	}
	return nil, fs.ErrNotExist
}

func (s *digestStore) Store(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sums == nil {
		s.sums = make(map[string][sha256.Size]byte)
	}
	s.sums[key] = sha256.Sum256(value)
	return nil
}

// peakHeapGrowth returns by how much the heap in use grew at most, above
// what it was before, while f ran.
func peakHeapGrowth(f func()) int64 {
	// Garbage collected early: the garbage of a streaming export must
	// not pass for held state.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	<-sampled
	return int64(peak.Load()) - int64(base.HeapInuse)
}

// TestExportImportMemory: exporting 20,000 values of 4 KiB (78 MiB), to
// a buffer, a file and a pipe, and importing them, from a buffer and a
// pipe, each grow the heap by far less than the values (Export and Import
// once held every value: 473 MB for 100,000 certificates), and the
// import stores every value as it was.
func TestExportImportMemory(t *testing.T) {
	ctx := t.Context()
	const n, size, limit = 20_000, 4 << 10, 16 << 20
	src := &copyingStore{}
	want := make(map[string][sha256.Size]byte, n)
	for i := range n {
		v := fmt.Appendf(nil, `{"n":%d,"pad":"%0*d"}`, i, size-32, i)
		k := storage.StateKey(fmt.Sprintf("big-%05d", i))
		if err := src.Store(ctx, k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = sha256.Sum256(v)
	}
	check := func(what string, grew int64) {
		t.Helper()
		t.Logf("%s: heap in use grew by %.1f MiB at most, for %d MiB of values", what, float64(grew)/(1<<20), n*size>>20)
		if grew > limit {
			t.Errorf("%s: heap in use grew by %.1f MiB for %d values of %d KiB: it holds the values in memory",
				what, float64(grew)/(1<<20), n, size>>10)
		}
	}

	var arc bytes.Buffer
	arc.Grow(8 << 20)
	var err error
	check("Export", peakHeapGrowth(func() { _, err = archive.Export(ctx, src, &arc) }))
	if err != nil {
		t.Fatalf("Export: %v", err)
	}
	name := filepath.Join(t.TempDir(), "state.tar.gz")
	var stats archive.ExportStats
	check("ExportFile", peakHeapGrowth(func() { stats, err = archive.ExportFile(ctx, src, name) }))
	if err != nil || stats.Keys != n {
		t.Fatalf("ExportFile = %+v, %v; want %d keys", stats, err, n)
	}

	dst := &digestStore{}
	var istats archive.ImportStats
	check("Import", peakHeapGrowth(func() {
		istats, err = archive.Import(ctx, dst, bytes.NewReader(arc.Bytes()), archive.ImportOptions{})
	}))
	if err != nil || istats.Imported != n {
		t.Fatalf("Import = %+v, %v; want %d imported", istats, err, n)
	}
	for k, sum := range want {
		if dst.sums[k] != sum {
			t.Fatalf("Import stored %s with another value", k)
		}
	}

	// From a pipe, which Import cannot read twice: it keeps a copy in
	// TempDir, and removes it.
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tmp := t.TempDir()
	dst = &digestStore{}
	check("Import from a pipe", peakHeapGrowth(func() {
		istats, err = archive.Import(ctx, dst, struct{ io.Reader }{f}, archive.ImportOptions{TempDir: tmp})
	}))
	if err != nil || istats.Imported != n || len(dst.sums) != n {
		t.Fatalf("Import(pipe) = %+v, %v; want %d imported", istats, err, n)
	}
	for k, sum := range want {
		if dst.sums[k] != sum {
			t.Fatalf("Import(pipe) stored %s with another value", k)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("Import left %d files in TempDir", len(left))
	}
}

// vanishingStore is a Storage whose key gone reads as absent on its
// second load, or with often on every second one, as if deleted and
// stored again.
type vanishingStore struct {
	storage.Storage
	gone  string
	often bool
	loads atomic.Int32
}

func (s *vanishingStore) Load(ctx context.Context, key string) ([]byte, error) {
	if key == s.gone {
		if n := s.loads.Add(1); n == 2 || s.often && n%2 == 0 {
			return nil, fs.ErrNotExist
		}
	}
	return s.Storage.Load(ctx, key)
}

// TestExportChanged: a key deleted after Export counted it stops Export
// with ErrChanged and an archive Import refuses; ExportFile tries again
// and writes a whole archive.
func TestExportChanged(t *testing.T) {
	ctx := t.Context()
	src := &copyingStore{}
	want := fillState(t, src)
	gone := storage.StateKey("limits")

	var buf bytes.Buffer
	_, err := archive.Export(ctx, &vanishingStore{Storage: src, gone: gone}, &buf)
	if !errors.Is(err, archive.ErrChanged) {
		t.Fatalf("Export(key deleted between the passes) = %v, want ErrChanged", err)
	}
	if _, err := archive.Import(ctx, &memStore{}, bytes.NewReader(buf.Bytes()), archive.ImportOptions{}); !errors.Is(err, archive.ErrInvalid) {
		t.Errorf("Import(unfinished archive) = %v, want ErrInvalid", err)
	}

	name := filepath.Join(t.TempDir(), "state.tar.gz")
	stats, err := archive.ExportFile(ctx, &vanishingStore{Storage: src, gone: gone}, name)
	if err != nil || stats.Keys != len(want) {
		t.Fatalf("ExportFile(key deleted once) = %+v, %v; want %d keys", stats, err, len(want))
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dst := &memStore{}
	if _, err := archive.Import(ctx, dst, f, archive.ImportOptions{}); err != nil {
		t.Fatalf("Import: %v", err)
	}
	sameState(t, dump(t, dst), want)

	_, err = archive.ExportFile(ctx, &vanishingStore{Storage: src, gone: gone, often: true}, name)
	if !errors.Is(err, archive.ErrChanged) {
		t.Errorf("ExportFile(key deleted at every second pass) = %v, want ErrChanged", err)
	}
}

// swappingReader reads a, and after a seek b: a file replaced while it
// was imported.
type swappingReader struct {
	*bytes.Reader
	b []byte
}

func (r *swappingReader) Seek(off int64, whence int) (int64, error) {
	if whence == io.SeekStart {
		r.Reader = bytes.NewReader(r.b)
	}
	return r.Reader.Seek(off, whence)
}

// TestImportArchiveChanged: an archive that reads back other than it was
// checked is refused before a value it did not check is stored.
func TestImportArchiveChanged(t *testing.T) {
	ctx := t.Context()
	st := &memStore{}
	k := storage.StateKey("limits")
	st.Store(ctx, k, []byte(`{"a":1}`))
	a := export(t, st)
	st.Store(ctx, k, []byte(`{"a":2}`))
	b := export(t, st)

	dst := &memStore{}
	_, err := archive.Import(ctx, dst, &swappingReader{Reader: bytes.NewReader(a), b: b}, archive.ImportOptions{})
	if !errors.Is(err, archive.ErrInvalid) {
		t.Fatalf("Import(archive changed between readings) = %v, want ErrInvalid", err)
	}
	if len(dst.m) != 0 {
		t.Errorf("Import stored %d keys, want none", len(dst.m))
	}
}
