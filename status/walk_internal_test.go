package status

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestWalkOrdered: the readers run in parallel, yet fn sees every record in
// key order, skipped ones left out; an error from fn stops the walk and
// leaves no reader behind (the race detector and the test's end would
// catch one still writing).
func TestWalkOrdered(t *testing.T) {
	var keys []string
	for i := range 2000 {
		keys = append(keys, fmt.Sprintf("k%05d", i))
	}
	read := func(key string) (Cert, bool) {
		if rand.IntN(50) == 0 {
			time.Sleep(time.Millisecond) // a slow record must not reorder the output
		}
		return Cert{Key: key}, key[len(key)-1] != '7'
	}
	var got []string
	err := walkOrdered(t.Context(), keys, read, func(c Cert) error {
		got = append(got, c.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range keys {
		if k[len(k)-1] != '7' {
			want = append(want, k)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("walkOrdered gave %d records out of order or incomplete, want %d in order", len(got), len(want))
	}

	stop := errors.New("stop")
	n := 0
	err = walkOrdered(t.Context(), keys, read, func(c Cert) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Errorf("walkOrdered after fn's error: %v after %d calls, want %v after 10", err, n, stop)
	}

	ctx, cancel := context.WithCancel(t.Context())
	err = walkOrdered(ctx, keys, read, func(c Cert) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("walkOrdered with its context cancelled = %v, want context.Canceled", err)
	}
	if err := walkOrdered(t.Context(), nil, read, func(Cert) error { return errors.New("called") }); err != nil {
		t.Errorf("walkOrdered over no keys = %v", err)
	}
}
