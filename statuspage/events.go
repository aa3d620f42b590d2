package statuspage

import (
	"slices"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper"
)

// DefaultRecentEvents is how many events a Recorder with a zero Size keeps.
const DefaultRecentEvents = 50

// Event is a Manager event as the status page shows it.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Names  []string  `json:"names"`
	Issuer string    `json:"issuer,omitempty"`
	Error  string    `json:"error,omitempty"`
	// Times is how many times the same event (kind, names, issuer and
	// error) came in a row of recent ones, the first at Since, the last
	// at Time: one certificate's retries take one line, not the page (an
	// ops trial's twelve failures in two minutes pushed every other event
	// off it). Zero or one: once.
	Times int       `json:"times,omitempty"`
	Since time.Time `json:"since,omitzero"`
}

// foldWithin is how many of the newest events a new one is folded into
// when it repeats one of them (a failure and its issuer's failure
// alternate).
const foldWithin = 4

// Recorder keeps a Manager's most recent events for the page. Its Observe
// method is a Manager.OnEvent function. The zero value is ready to use.
type Recorder struct {
	// Size is how many events are kept. Zero means DefaultRecentEvents.
	Size int

	mu     sync.Mutex // guards events and change
	events []Event    // oldest first
	change uint64     // how many events changed a stored certificate
}

// Observe records e. Loaded events (a certificate read from storage into
// memory) are left out: they are routine.
func (r *Recorder) Observe(e certkeeper.Event) {
	if e.Kind == certkeeper.Loaded {
		return
	}
	ev := Event{Time: e.Time, Kind: e.Kind.String(), Names: e.Names, Issuer: e.Issuer}
	if e.Err != nil {
		ev.Error = e.Err.Error()
	}
	size := r.Size
	if size <= 0 {
		size = DefaultRecentEvents
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case certkeeper.Obtained, certkeeper.Renewed, certkeeper.RenewalFailed, certkeeper.Revoked:
		r.change++ // the Handler reads the storage anew rather than reuse a read (see snapshot.fresh)
	}
	for i := len(r.events) - 1; i >= 0 && i >= len(r.events)-foldWithin; i-- {
		if p := r.events[i]; p.Kind == ev.Kind && p.Issuer == ev.Issuer && p.Error == ev.Error && slices.Equal(p.Names, ev.Names) {
			ev.Times, ev.Since = max(p.Times, 1)+1, p.Time
			if !p.Since.IsZero() {
				ev.Since = p.Since
			}
			r.events = slices.Delete(r.events, i, i+1)
			break
		}
	}
	r.events = append(r.events, ev)
	if len(r.events) > size {
		r.events = append(r.events[:0], r.events[len(r.events)-size:]...)
	}
}

// Recent returns the recorded events, newest first.
func (r *Recorder) Recent() []Event {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Event, len(r.events))
	for i, e := range r.events {
		out[len(out)-1-i] = e
	}
	return out
}

// changes returns how many recorded events changed what the storage
// holds about a certificate (obtained, renewed, renewal failed,
// revoked); 0 for a nil Recorder.
func (r *Recorder) changes() uint64 {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.change
}
