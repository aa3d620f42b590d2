// Package load is the client loop the benchmark commands under bench/
// share: several workers repeating one request until a deadline, counting
// the requests that completed. It exists so that bench/binary and
// bench/handshakes count alike, and a change to how a run is driven (how
// an error ends it, when a worker stops) is made once.
package load

import (
	"sync"
	"sync/atomic"
	"time"
)

// Run calls once from workers goroutines, each in a loop until d has
// passed, and returns how many calls succeeded. once gets its worker's
// number (0 to workers-1) and how many calls that worker completed before
// this one, so a worker can cycle through names. A worker stops at its
// first error; the others run on until d has passed. If any call failed,
// Run returns the first error.
func Run(workers int, d time.Duration, once func(worker, n int) error) (int, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; time.Now().Before(deadline); n++ {
				if err := once(w, n); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if v := firstErr.Load(); v != nil {
		return int(done.Load()), v.(error)
	}
	return int(done.Load()), nil
}
