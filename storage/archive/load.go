package archive

import (
	"context"
	"sync"

	"github.com/certkeeper/certkeeper/storage"
)

// readAhead is how many values loadInOrder loads ahead of the one it
// hands over: enough to overlap the round trips of a network storage
// (Redis, PostgreSQL), few enough that the values held stay a few
// hundred KiB (and at most readAhead+2 times 16 MiB, the largest value
// an archive holds).
const readAhead = 8

// loadInOrder loads each of keys from st, up to readAhead of them at
// once, and calls fn with each key and its value (or Load's error), one
// after another in the order of keys. It stops at fn's first error and
// returns it, once every load it began has ended. It holds at most
// readAhead+2 values at a time, whatever the number of keys.
func loadInOrder(ctx context.Context, st storage.Storage, keys []string, fn func(key string, value []byte, err error) error) error {
	type result struct {
		value []byte
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// pending holds, in the order of keys, the loads begun and not yet
	// handed to fn; its capacity bounds the values held.
	pending := make(chan chan result, readAhead)
	wg.Go(func() {
		defer close(pending)
		for _, key := range keys {
			c := make(chan result, 1)
			select {
			case pending <- c:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				value, err := st.Load(ctx, key)
				c <- result{value, err}
			})
		}
	})
	i := 0
	for c := range pending {
		r := <-c
		if err := fn(keys[i], r.value, r.err); err != nil {
			return err
		}
		i++
	}
	return ctx.Err()
}
