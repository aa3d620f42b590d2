package every

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGate: of many concurrent callers one goes through per interval.
func TestGate(t *testing.T) {
	var g Gate
	var through atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if g.Allow(time.Hour) {
				through.Add(1)
			}
		})
	}
	wg.Wait()
	if n := through.Load(); n != 1 {
		t.Fatalf("%d callers through in one interval, want 1", n)
	}
	if g.Allow(time.Hour) {
		t.Error("a second caller went through within the interval")
	}
	if !g.Allow(0) {
		t.Error("no caller through after the interval")
	}
}
