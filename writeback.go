package certkeeper

import (
	"context"
	"sync"
	"time"
)

// writeBack paces the writes of one stored value that many events change
// (the limit state, the failures status shows): the first change after a
// quiet interval is written at once, by its caller when it may wait for
// it; the changes that follow within writeBackEvery share one write in
// the background at the interval's end. A flood of failing names thus
// costs a write or two a second, not one per name, while a lone failure
// is in storage when its handshake returns, as before. Close writes what
// is left before it returns (the write waits on the Manager's context).
//
// The value's owner keeps the changes (in memory, or queued); flush
// writes all of them, reading them only after it is called, so that a
// change marked while a flush runs is in that flush or the next.
type writeBack struct {
	mu      sync.Mutex
	dirty   bool      // changed since the last flush began
	running bool      // a flush runs, or a goroutine waits to run one
	last    time.Time // when the last flush began
}

// writeBackEvery is the shortest interval between two writes of one
// value. Nodes sharing the storage read the limit state every
// limitsShareInterval, so a second keeps the sharing within seconds.
const writeBackEvery = time.Second

// writeBackTimeout bounds one write.
const writeBackTimeout = 10 * time.Second

// changed marks w changed and writes it: in the caller (with ctx) when it
// may wait for the write and none ran in the last writeBackEvery, else in
// the background. flush must serialise itself against writes of the same
// value made outside w.
func (m *Manager) changed(ctx context.Context, w *writeBack, flush func(context.Context), mayWait bool) {
	w.mu.Lock()
	w.dirty = true
	if w.running {
		w.mu.Unlock()
		return // the running writer loops while dirty
	}
	w.running = true
	now := time.Now()
	inline := mayWait && now.Sub(w.last) >= writeBackEvery
	if inline {
		w.dirty, w.last = false, now
	}
	w.mu.Unlock()
	if inline {
		// The write may carry other callers' changes: it is not cut
		// short by this caller's end (a client that hung up).
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeBackTimeout)
		flush(fctx)
		cancel()
		w.mu.Lock()
		if !w.dirty {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
	m.inBackground(func() { m.writeBackLoop(w, flush) })
}

// writeBackLoop flushes w, each flush writeBackEvery after the last, until
// nothing changed since; a closing Manager flushes at once.
func (m *Manager) writeBackLoop(w *writeBack, flush func(context.Context)) {
	for {
		w.mu.Lock()
		wait := writeBackEvery - time.Since(w.last)
		w.mu.Unlock()
		if wait > 0 && m.ctx.Err() == nil {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-m.ctx.Done():
				t.Stop()
			}
		}
		w.mu.Lock()
		if !w.dirty {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.dirty, w.last = false, time.Now()
		w.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), writeBackTimeout)
		flush(ctx)
		cancel()
	}
}
