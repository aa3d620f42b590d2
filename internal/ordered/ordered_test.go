package ordered

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestEach: results come in key order although reads finish out of order,
// no more than ahead+2 results are held (read but not yet handed over)
// however slow fn is, and fn's error ends Each once the reads begun have
// ended (the race detector would see a read still running).
func TestEach(t *testing.T) {
	var keys []string
	for i := range 300 {
		keys = append(keys, fmt.Sprintf("k%03d", i))
	}
	var held, most atomic.Int32
	read := func(ctx context.Context, key string) string {
		if key[len(key)-1] == '3' {
			time.Sleep(time.Millisecond) // finishes after later keys
		}
		if n := held.Add(1); n > most.Load() {
			most.Store(n)
		}
		return key
	}
	var got []string
	err := Each(t.Context(), keys, 4, 8, read, func(key, v string) error {
		held.Add(-1)
		if key != v {
			return fmt.Errorf("fn(%s) got %s", key, v)
		}
		got = append(got, v)
		time.Sleep(10 * time.Microsecond)
		return nil
	})
	if err != nil || fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Fatalf("Each = %v, %d results; want all %d in order", err, len(got), len(keys))
	}
	if m := most.Load(); m > 8+2 {
		t.Errorf("%d results held at once, want at most ahead+2 = 10", m)
	}
	stop := errors.New("stop")
	n := 0
	if err := Each(t.Context(), keys, 4, 8, read, func(string, string) error {
		if n++; n == 5 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 5 {
		t.Errorf("Each after fn's error: %v after %d calls, want stop after 5", err, n)
	}
}
