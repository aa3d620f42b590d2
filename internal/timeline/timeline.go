// Package timeline records how long the steps of one issuance take, so
// that the debug log (and the first-handshake benchmark that reads it) can
// say where the time of an on-demand certificate goes.
//
// A Timeline travels in the issuance's context, like net/http/httptrace's
// ClientTrace: the root package starts one, and the issuer, the solvers
// and the root mark their steps on it without a new parameter. Without a
// Timeline in the context, Mark does nothing and allocates nothing.
package timeline

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Timeline is the steps of one issuance, each with the time since the
// previous mark (or the start). It is safe for concurrent use.
type Timeline struct {
	mu    sync.Mutex // guards last and steps
	start time.Time
	last  time.Time
	steps []Step
}

// Step is one marked step: its name and how long it took.
type Step struct {
	Name string
	Took time.Duration
}

// New returns a Timeline started now.
func New() *Timeline {
	now := time.Now()
	return &Timeline{start: now, last: now}
}

type key struct{}

// With returns ctx carrying t.
func With(ctx context.Context, t *Timeline) context.Context {
	return context.WithValue(ctx, key{}, t)
}

// From returns the Timeline ctx carries, or nil.
func From(ctx context.Context) *Timeline {
	t, _ := ctx.Value(key{}).(*Timeline)
	return t
}

// Mark records step name on ctx's Timeline, if it carries one: the time
// since the previous mark. A step marked twice (one per authorization)
// is counted twice.
func Mark(ctx context.Context, name string) {
	if t := From(ctx); t != nil {
		t.Mark(name)
	}
}

// Mark records step name: the time since the previous mark.
func (t *Timeline) Mark(name string) {
	now := time.Now()
	t.mu.Lock()
	t.steps = append(t.steps, Step{Name: name, Took: now.Sub(t.last)})
	t.last = now
	t.mu.Unlock()
}

// Steps returns the steps marked so far, in order.
func (t *Timeline) Steps() []Step {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Step(nil), t.steps...)
}

// Total is the time from the start to the last mark.
func (t *Timeline) Total() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last.Sub(t.start)
}

// LogValue implements slog.LogValuer: a group of steps in microseconds
// (steps of the same name summed) and the total, as "steps_us".
func (t *Timeline) LogValue() slog.Value {
	steps := t.Steps()
	attrs := make([]slog.Attr, 0, len(steps)+1)
	index := make(map[string]int, len(steps))
	for _, s := range steps {
		if i, ok := index[s.Name]; ok {
			attrs[i].Value = slog.Int64Value(attrs[i].Value.Int64() + s.Took.Microseconds())
			continue
		}
		index[s.Name] = len(attrs)
		attrs = append(attrs, slog.Int64(s.Name, s.Took.Microseconds()))
	}
	attrs = append(attrs, slog.Int64("total", t.Total().Microseconds()))
	return slog.GroupValue(attrs...)
}
