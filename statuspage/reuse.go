package statuspage

import (
	"context"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"golang.org/x/sync/singleflight"
)

// A read of the storage (status.Walk) costs about 60 µs of wall time per
// certificate and more CPU than that (100,000 certificates: 6 s from a
// filestore, 10 s from Redis, ~8 s of CPU). The page reloads itself every
// 30 s, so each open tab would cost a quarter of a core if every request
// read the storage anew. Instead, concurrent requests share one read, and
// a finished read is reused for a while: see reuseFor.
const (
	// minReuseRead is the shortest read that is reused at all: a
	// smaller store is read anew for every request (only concurrent
	// requests share a read), so that a certificate shows on the page the
	// moment it is stored.
	minReuseRead = 200 * time.Millisecond
	// minReuse is the shortest time a read that is reused at all is.
	minReuse = 10 * time.Second
	// reuseFactor times the duration of a read is how long it is reused,
	// when that is longer than minReuse: reads take at most a sixth of
	// the time, however many requests come.
	reuseFactor = 5
	// readTimeout bounds a shared read, which no request's context
	// bounds: it goes on when the request that started it goes away.
	readTimeout = 5 * time.Minute
)

// reuseFor is how long a read of the storage that took took is reused:
// not at all under minReuseRead, else max(minReuse, reuseFactor×took).
// At 100,000 certificates (6 s reads) a read serves 30 s of requests.
func reuseFor(took time.Duration) time.Duration {
	if took < minReuseRead {
		return 0
	}
	return max(minReuse, reuseFactor*took)
}

// snapshot is one read of the storage's certificates. It is shared by
// the requests that reuse it: nothing may modify it or its certs.
type snapshot struct {
	certs   []status.Cert // every stored entry, in key order, as status.Walk gives them
	at      time.Time     // when the read began: the states are as of then
	done    time.Time     // when it ended
	took    time.Duration // done - at
	changes uint64        // the Recorder's count of changes when the read began
}

// fresh reports whether s may serve a request at now, when the Recorder
// has counted changes: while younger than reuseFor(s.took); a change in
// this process since the read began (a certificate obtained, renewed,
// failing, revoked) ends the reuse once s is as old as it took to read,
// so that a stream of changes still leaves the storage unread at least
// half the time.
func (s *snapshot) fresh(now time.Time, changes uint64) bool {
	age := now.Sub(s.done)
	if age < 0 || age >= reuseFor(s.took) {
		return false
	}
	return changes == s.changes || age < s.took
}

// reads shares and reuses the Handler's reads of its storage.
type reads struct {
	flight singleflight.Group // the read under way, shared by concurrent requests
	mu     sync.Mutex         // guards last
	last   *snapshot          // the last read while it may be reused; nil while a read is under way, after a failed one or a quick one, and once its window ends
}

// snapshot returns a read of h.Storage: the last one while it is fresh,
// else the one under way, else a new one, shared with the requests that
// come while it runs. The read is not bound to ctx (another request may
// be waiting for it), but the wait is: a request whose client went away
// returns ctx.Err() at once. reused reports whether the read was made
// for earlier requests and kept.
func (h *Handler) snapshot(ctx context.Context) (s *snapshot, reused bool, err error) {
	rd := &h.reads
	rd.mu.Lock()
	last := rd.last
	rd.mu.Unlock()
	if last != nil && last.fresh(time.Now(), h.Events.changes()) {
		return last, true, nil
	}
	ch := rd.flight.DoChan("read", func() (any, error) {
		// At most one list is held: the old one goes before the new one
		// is read (requests still writing it keep it until they finish).
		rd.mu.Lock()
		rd.last = nil
		rd.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readTimeout)
		defer cancel()
		s := &snapshot{at: time.Now(), changes: h.Events.changes()}
		err := status.Walk(ctx, h.Storage, s.at, func(c status.Cert) error {
			s.certs = append(s.certs, c)
			return nil
		})
		if err != nil {
			return nil, err // Walk says what it was reading; the page prefixes "Reading the certificates failed"
		}
		s.done = time.Now()
		s.took = s.done.Sub(s.at)
		if reuse := reuseFor(s.took); reuse > 0 {
			rd.mu.Lock()
			rd.last = s
			rd.mu.Unlock()
			// Dropped when no request may reuse it any more: the list of
			// every stored certificate is held for its window only, not
			// until the next request.
			time.AfterFunc(reuse, func() {
				rd.mu.Lock()
				defer rd.mu.Unlock()
				if rd.last == s {
					rd.last = nil
				}
			})
		}
		return s, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, false, r.Err
		}
		return r.Val.(*snapshot), false, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}
