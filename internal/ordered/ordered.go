// Package ordered reads many storage keys at once and hands the results
// over one at a time, in the order of the keys: status.Walk (the status
// page, "certkeeper status", the alerts) and storage/archive's export both
// read every record this way, overlapping the loads (network round trips,
// parsing on every core) while their output stays in key order and their
// memory stays bounded, whatever the number of keys.
package ordered

import (
	"context"
	"sync"
)

// Each calls read for each of keys, from up to workers goroutines at once,
// and fn with each key and its result, one after another in the order of
// keys, as soon as that result and those before it are in: no more than
// ahead results wait for fn. read gets a context that ends when Each
// returns. Each stops at fn's first error and returns it, or when ctx
// ends (ctx.Err()), in both cases once every read begun has ended.
func Each[T any](ctx context.Context, keys []string, workers, ahead int, read func(ctx context.Context, key string) T, fn func(key string, v T) error) error {
	type job struct {
		key  string
		slot chan T
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Each key gets a slot, a channel its reader fills; the slots go to fn
	// in key order through pending, whose capacity bounds the read-ahead.
	jobs := make(chan job)
	pending := make(chan job, max(ahead, 1))
	wg.Go(func() {
		defer close(jobs)
		defer close(pending)
		for _, key := range keys {
			j := job{key, make(chan T, 1)}
			select {
			case pending <- j:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	})
	for range min(max(workers, 1), max(len(keys), 1)) {
		wg.Go(func() {
			for j := range jobs {
				j.slot <- read(ctx, j.key)
			}
		})
	}
	for j := range pending {
		var v T
		select {
		case v = <-j.slot:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := fn(j.key, v); err != nil {
			return err
		}
	}
	return ctx.Err()
}
