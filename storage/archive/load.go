package archive

import (
	"context"
	"crypto/sha256"

	"github.com/certkeeper/certkeeper/internal/ordered"
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
// each key and what was loaded, one after another in the order of keys
// (ordered.Each). It stops at fn's first error and returns it, once every
// load it began has ended. It holds at most readAhead+2 values at a
// time, whatever the number of keys.
func loadInOrder(ctx context.Context, st storage.Storage, keys []string, check func(key string, value []byte) error, fn func(key string, l *loaded) error) error {
	return ordered.Each(ctx, keys, readAhead, readAhead, func(ctx context.Context, key string) *loaded {
		l := &loaded{}
		l.value, l.err = st.Load(ctx, key)
		if l.err == nil {
			l.sum = sha256.Sum256(l.value)
			if check != nil {
				l.invalid = check(key, l.value)
			}
		}
		return l
	}, fn)
}
