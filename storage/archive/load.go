package archive

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/certkeeper/certkeeper/storage"
)

// readAhead is how many values loadInOrder loads ahead of the one it
// hands over: enough to overlap the round trips of a network storage
// (Redis, PostgreSQL) and to check values on every core, few enough that
// the values held stay a few hundred KiB (and at most readAhead+2 times
// 16 MiB, the largest value an archive holds).
const readAhead = 8

// loaded is a value loadInOrder loaded.
type loaded struct {
	value []byte
	err   error // Load's
	sum   [sha256.Size]byte
	// invalid is check's error, if loadInOrder was given a check.
	invalid error
}

// loadInOrder loads each of keys from st, up to readAhead of them at
// once, with its digest and, if check is not nil, check's verdict on it
// (computed beside the load, so on several cores), and calls fn with
// each key and what was loaded, one after another in the order of keys.
// It stops at fn's first error and returns it, once every load it began
// has ended. It holds at most readAhead+2 values at a time, whatever the
// number of keys.
func loadInOrder(ctx context.Context, st storage.Storage, keys []string, check func(key string, value []byte) error, fn func(key string, l *loaded) error) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// pending holds, in the order of keys, the loads begun and not yet
	// handed to fn; its capacity bounds the values held.
	pending := make(chan chan *loaded, readAhead)
	wg.Go(func() {
		defer close(pending)
		for _, key := range keys {
			c := make(chan *loaded, 1)
			select {
			case pending <- c:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				l := &loaded{}
				l.value, l.err = st.Load(ctx, key)
				if l.err == nil {
					l.sum = sha256.Sum256(l.value)
					if check != nil {
						l.invalid = check(key, l.value)
					}
				}
				c <- l
			})
		}
	})
	i := 0
	for c := range pending {
		if err := fn(keys[i], <-c); err != nil {
			return err
		}
		i++
	}
	return ctx.Err()
}
