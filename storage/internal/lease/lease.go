// Package lease holds what the networked storage backends (redisstore,
// pgstore) share about a lock: waiting for its lease with jittered
// backoff, renewing it every third of its duration while it is held, and
// releasing it once on unlock. Each backend supplies only the operations
// that touch its server, so the timing that the storagetest conformance
// suite checks lives in one place.
package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// NewToken returns a random owner token, which tells this holder's lease
// from any other's.
func NewToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// Acquire calls try until it takes the lease, fails, or ctx ends. Between
// tries it waits from minPoll, doubling to maxPoll, with jitter so that
// waiters do not poll in step. An error from try is returned as it is (the
// backend wraps its own); an ended ctx gives "BACKEND: lock NAME: …".
func Acquire(ctx context.Context, backend, name string, minPoll, maxPoll time.Duration, try func(context.Context) (bool, error)) error {
	wait := minPoll
	var timer *time.Timer
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: lock %q: %w", backend, name, err)
		}
		ok, err := try(ctx)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		d := wait/2 + mrand.N(wait/2+1)
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: lock %q: %w", backend, name, ctx.Err())
		case <-timer.C:
		}
		wait = min(2*wait, maxPoll)
	}
}

// Held is a lease this process holds, and how to keep and give it up.
type Held struct {
	Backend string        // the package, for log messages: "redisstore"
	Name    string        // the lock's name
	Server  string        // where the lease is kept, for log messages
	TTL     time.Duration // the lease's duration
	// OpTimeout bounds one renewal or release, which no caller's
	// context bounds.
	OpTimeout time.Duration
	Logger    *slog.Logger
	// Renew extends the lease; held is false when it was lost (expired
	// or taken over), which ends the renewals.
	Renew func(ctx context.Context) (held bool, err error)
	// Release gives the lease up if this owner still holds it.
	Release func(ctx context.Context) error
}

// Hold starts renewing h every third of its TTL and returns its unlock
// function, which stops the renewals, waits for them to end and releases
// the lease; calling it again does nothing.
func Hold(h Held) (unlock func()) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go h.renew(stop, done)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			<-done
			h.release()
		})
	}
}

// renew extends the lease every third of its duration until stop is
// closed or the lease is lost, then closes done.
func (h Held) renew(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ticker := time.NewTicker(h.TTL / 3)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.OpTimeout)
		held, err := h.Renew(ctx)
		cancel()
		switch {
		case err != nil:
			// The lease may still be held: try again at the next tick.
			h.Logger.Warn(h.Backend+": renewing lock lease failed",
				"lock", h.Name, "server", h.Server, "err", err)
		case !held:
			h.Logger.Error(h.Backend+": lock lease lost: it expired or was taken over before it was renewed",
				"lock", h.Name, "server", h.Server, "lease", h.TTL)
			return
		}
	}
}

// release gives the lease up; one that cannot be released expires by
// itself.
func (h Held) release() {
	ctx, cancel := context.WithTimeout(context.Background(), h.OpTimeout)
	defer cancel()
	if err := h.Release(ctx); err != nil {
		h.Logger.Warn(h.Backend+": releasing lock lease failed; it expires by itself",
			"lock", h.Name, "server", h.Server, "lease", h.TTL, "err", err)
	}
}
