package load

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRun: every worker runs until the deadline and counts its calls; the
// first error is returned and stops only its own worker.
func TestRun(t *testing.T) {
	var mu sync.Mutex
	calls := map[int]int{}
	n, err := Run(3, 50*time.Millisecond, func(w, i int) error {
		mu.Lock()
		defer mu.Unlock()
		if calls[w] != i {
			t.Errorf("worker %d: call numbered %d after %d calls", w, i, calls[w])
		}
		calls[w]++
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil || len(calls) != 3 || n != calls[0]+calls[1]+calls[2] || n < 3 {
		t.Fatalf("Run = %d, %v; calls per worker %v", n, err, calls)
	}

	boom := errors.New("boom")
	var after int
	n, err = Run(2, 50*time.Millisecond, func(w, i int) error {
		if w == 0 {
			return boom
		}
		mu.Lock()
		after++
		mu.Unlock()
		time.Sleep(time.Millisecond)
		return nil
	})
	if !errors.Is(err, boom) || n != after || after < 2 {
		t.Errorf("Run with a failing worker = %d, %v (the other worker made %d calls); want boom and the other worker's count", n, err, after)
	}
}
