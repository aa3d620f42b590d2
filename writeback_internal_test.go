package certkeeper

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestWriteBack: the first change after a quiet second is written by its
// caller before it returns; a thousand changes from four goroutines
// within the next second share one or two background writes, each
// seeing every change made before it began; Close writes what is left.
func TestWriteBack(t *testing.T) {
	m := &Manager{Storage: filestore.New(t.TempDir())}
	if err := m.init(); err != nil {
		t.Fatal(err)
	}
	var (
		w       writeBack
		mu      sync.Mutex
		changes int // changes made
		written int // changes the last flush saw
		flushes atomic.Int32
	)
	flush := func(context.Context) {
		flushes.Add(1)
		mu.Lock()
		written = changes
		mu.Unlock()
		time.Sleep(time.Millisecond) // a storage write
	}
	change := func(ctx context.Context) {
		mu.Lock()
		changes++
		mu.Unlock()
		m.changed(ctx, &w, flush, true)
	}

	change(t.Context())
	if n := flushes.Load(); n != 1 {
		t.Fatalf("the first change: %d writes when it returned, want 1 (by its caller)", n)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 250 {
				change(t.Context())
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > writeBackEvery/2 {
		t.Fatalf("1,000 changes took %v: the callers waited for writes", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := written == changes
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := flushes.Load(); n < 2 || n > 3 {
		t.Errorf("%d writes for 1,001 changes, want 2 or 3", n)
	}
	if written != changes {
		t.Errorf("the last write saw %d of %d changes", written, changes)
	}

	// A change within the second after a write waits in the background;
	// Close writes it before it returns.
	// (One written by its caller, after a stall of a second, is
	// followed by another.)
	var before int32
	for range 3 {
		before = flushes.Load()
		change(t.Context())
		if flushes.Load() == before {
			break
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if flushes.Load() != before+1 || written != changes {
		t.Errorf("Close: %d writes, the last saw %d of %d changes; want one more write with all", flushes.Load()-before, written, changes)
	}
}
