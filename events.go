package certkeeper

import (
	"sync"
	"time"
)

// EventKind says what happened to a certificate.
type EventKind int

// The kinds of Event.
const (
	// Obtained: a new certificate was issued and stored.
	Obtained EventKind = iota + 1
	// Renewed: a certificate was replaced by a renewal.
	Renewed
	// RenewalFailed: a renewal attempt failed; Err says why, Retry when
	// the next attempt is.
	RenewalFailed
	// Revoked: a certificate was found revoked (RevokeStored marked its
	// record) and is replaced now, with a new key; emitted once, before
	// the first attempt.
	Revoked
	// Denied: a handshake asked for a name the policy or a limit
	// refused, or sent no name and there is no DefaultName (name "", Err
	// ErrNoSNI).
	Denied
	// Loaded: a stored certificate was loaded into memory.
	Loaded
	// IssuerFailed: one issuer of the chain failed to issue (the next
	// one, if any, is tried); Issuer says which, Err why, Renewal whether
	// it was a renewal.
	IssuerFailed
)

var kindNames = [...]string{"", "obtained", "renewed", "renewal_failed", "revoked", "denied", "loaded", "issuer_failed"}

// String returns the kind's snake_case name, as used in logs and metrics.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event reports a change in a certificate's state.
type Event struct {
	Kind     EventKind
	Names    []string  // the certificate's names (the denied name for Denied)
	Issuer   string    // issuer ID, when known
	NotAfter time.Time // the certificate's expiry, when there is one
	Retry    time.Time // RenewalFailed: when the next attempt is
	Err      error     // RenewalFailed, Denied: why
	Time     time.Time // when it happened
	// Duration is how long the issuance took (Obtained, Renewed,
	// IssuerFailed).
	Duration time.Duration
	// Renewal reports whether an IssuerFailed attempt was a renewal.
	Renewal bool
}

// watchers fans events out to Watch channels.
type watchers struct {
	mu   sync.Mutex // guards subs and closed
	subs map[chan Event]struct{}
	done bool
}

// Watch returns a channel that receives every Event from now on, and a
// function that stops the subscription. The channel is buffered; a
// watcher that does not keep up misses events rather than slowing
// certkeeper down. It is closed by stop or by Close.
func (m *Manager) Watch() (events <-chan Event, stop func()) {
	_ = m.init()
	ch := make(chan Event, 64)
	w := &m.watchers
	w.mu.Lock()
	if w.done {
		close(ch)
		w.mu.Unlock()
		return ch, func() {}
	}
	if w.subs == nil {
		w.subs = make(map[chan Event]struct{})
	}
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			if _, ok := w.subs[ch]; ok {
				delete(w.subs, ch)
				close(ch)
			}
			w.mu.Unlock()
		})
	}
}

func (w *watchers) send(e Event) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (w *watchers) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		close(ch)
	}
	w.subs = nil
	w.done = true
}

// emit delivers e to OnEvent and the watchers.
func (m *Manager) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.Kind > 0 && int(e.Kind) < len(m.stats.events) {
		m.stats.events[e.Kind].Add(1)
	}
	if m.OnEvent != nil {
		m.OnEvent(e)
	}
	m.watchers.send(e)
}
