package limit

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)

// step is one event in a FailureBackoff's life: a failure recorded at
// t0+at, or (record false) a question at t0+at and the answer wanted.
type step struct {
	record bool
	at     time.Duration
	ok     bool
	retry  time.Duration // when !ok: t0+retry
}

func runSteps(t *testing.T, b *FailureBackoff, name string, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := t0.Add(s.at)
		if s.record {
			b.Record(name, now)
			continue
		}
		ok, retry := b.Allowed(name, now)
		want := time.Time{}
		if !s.ok {
			want = t0.Add(s.retry)
		}
		if ok != s.ok || !retry.Equal(want) {
			t.Errorf("step %d: Allowed(%q, t0+%v) = %v, t0+%v, want %v, t0+%v",
				i, name, s.at, ok, retry.Sub(t0), s.ok, want.Sub(t0))
		}
	}
}

func TestFailureBackoff(t *testing.T) {
	minute := time.Minute
	tests := []struct {
		name  string
		b     *FailureBackoff
		steps []step
	}{
		{"never failed", &FailureBackoff{}, []step{{at: 0, ok: true}}},
		{"Let's Encrypt defaults", &FailureBackoff{}, []step{
			{record: true, at: 0},
			{at: 0, retry: 1 * minute},
			{at: 1*minute - 1, retry: 1 * minute},
			{at: 1 * minute, ok: true},
			{record: true, at: 1 * minute},
			{at: 1 * minute, retry: 3 * minute},
			{record: true, at: 3 * minute},
			{at: 3 * minute, retry: 7 * minute},
			{record: true, at: 7 * minute},
			{at: 7 * minute, retry: 15 * minute},
			{record: true, at: 15 * minute}, // the fifth in an hour
			{at: 15 * minute, retry: 60 * minute},
			{at: 31 * minute, retry: 60 * minute}, // the 16-minute backoff alone would allow it
			{at: 60 * minute, ok: true},
			{record: true, at: 60 * minute}, // failures at 1, 3, 7, 15, 60 minutes
			{at: 60 * minute, retry: 76 * minute},
		}},
		{"failures leave the window", &FailureBackoff{}, []step{
			{record: true, at: 0},
			{record: true, at: time.Second},
			{record: true, at: 2 * time.Second},
			{record: true, at: 3 * time.Second},
			{record: true, at: 4 * time.Second},
			{at: 30 * minute, retry: 60 * minute},
			{at: 60*minute - 1, retry: 60 * minute},
			{at: 60 * minute, ok: true}, // four left, the last 8 minutes back off an hour ago
		}},
		{"custom", &FailureBackoff{Limit: 2, Window: 10 * minute, Backoff: 2 * minute}, []step{
			{record: true, at: 0},
			{at: 0, retry: 2 * minute},
			{record: true, at: 2 * minute},
			{at: 2 * minute, retry: 10 * minute},
			{at: 10 * minute, ok: true},
		}},
		{"backoff capped at the window", &FailureBackoff{Limit: 10, Window: 5 * minute}, []step{
			{record: true, at: 0},
			{record: true, at: 1},
			{record: true, at: 2},
			{record: true, at: 3},
			{at: 3, retry: 5*minute + 3}, // 1 minute doubled 3 times is 8, capped at 5
		}},
		{"no backoff", &FailureBackoff{Backoff: -1}, []step{
			{record: true, at: 0},
			{at: 0, ok: true},
			{record: true, at: 0},
			{record: true, at: 0}, // the same time: one failure
			{record: true, at: 1},
			{record: true, at: 2},
			{record: true, at: 3},
			{at: 3, ok: true},
			{record: true, at: 4},
			{at: 4, retry: 60 * minute},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runSteps(t, tt.b, "a.test", tt.steps)
		})
	}
	t.Run("names are independent", func(t *testing.T) {
		var b FailureBackoff
		b.Record("a.test", t0)
		if ok, _ := b.Allowed("b.test", t0); !ok {
			t.Errorf("Allowed(%q) after a failure of %q = false, want true", "b.test", "a.test")
		}
	})
}

func TestFailureBackoffState(t *testing.T) {
	var b FailureBackoff
	for i := range 10 {
		b.Record("a.test", t0.Add(time.Duration(i)*time.Second))
	}
	b.Record("b.test", t0.Add(time.Minute))
	data, err := json.Marshal(b.State())
	if err != nil {
		t.Fatalf("json.Marshal(State()) = %v", err)
	}
	want := `{"failures":{"a.test":["2026-01-02T15:00:05Z","2026-01-02T15:00:06Z","2026-01-02T15:00:07Z",` +
		`"2026-01-02T15:00:08Z","2026-01-02T15:00:09Z"],"b.test":["2026-01-02T15:01:00Z"]}}`
	if string(data) != want {
		t.Errorf("json.Marshal(State()) = %s, want %s (at most Limit times per name)", data, want)
	}

	var s BackoffState
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("json.Unmarshal(%s) = %v", data, err)
	}
	var restored FailureBackoff
	restored.Restore(s)
	restored.Restore(s) // the same failures twice count once
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		for _, at := range []time.Duration{0, time.Minute, 2 * time.Minute, 59 * time.Minute, time.Hour + 5*time.Second} {
			now := t0.Add(at)
			ok1, r1 := b.Allowed(name, now)
			ok2, r2 := restored.Allowed(name, now)
			if ok1 != ok2 || !r1.Equal(r2) {
				t.Errorf("Allowed(%q, t0+%v): restored %v, %v; original %v, %v", name, at, ok2, r2, ok1, r1)
			}
		}
	}

	// Restore adds to what is there.
	var merged FailureBackoff
	merged.Record("c.test", t0)
	merged.Restore(s)
	got := merged.State()
	if len(got.Failures) != 3 || len(got.Failures["a.test"]) != 5 {
		t.Errorf("State() after Restore into a FailureBackoff with c.test = %v, want a, b and c", got)
	}
}

func TestFailureBackoffBounded(t *testing.T) {
	t.Run("MaxNames", func(t *testing.T) {
		b := FailureBackoff{MaxNames: 100}
		for i := range 1000 {
			b.Record(fmt.Sprintf("n%d.test", i), t0.Add(time.Duration(i)*time.Millisecond))
		}
		s := b.State()
		// Names are dropped a sixteenth of MaxNames at a time.
		if len(s.Failures) > 100 || len(s.Failures) < 100-100/16 {
			t.Errorf("%d names after 1000, want MaxNames (100) or at most 6 fewer", len(s.Failures))
		}
		if _, ok := s.Failures["n999.test"]; !ok {
			t.Errorf("the newest name was dropped")
		}
		if _, ok := s.Failures["n0.test"]; ok {
			t.Errorf("the oldest name was kept")
		}
	})
	t.Run("pruned", func(t *testing.T) {
		var b FailureBackoff
		b.Record("old.test", t0)
		b.Record("new.test", t0.Add(time.Hour))
		s := b.State()
		if _, ok := s.Failures["old.test"]; ok || len(s.Failures) != 1 {
			t.Errorf("State() = %v, want only new.test: old.test's failure has left the window", s)
		}
	})
	t.Run("Restore over MaxNames", func(t *testing.T) {
		s := BackoffState{Failures: map[string][]time.Time{}}
		for i := range 1000 {
			s.Failures[fmt.Sprintf("n%d.test", i)] = []time.Time{t0.Add(time.Duration(i) * time.Second)}
		}
		s.Failures["empty.test"] = nil
		b := FailureBackoff{MaxNames: 10}
		b.Restore(s)
		got := b.State()
		if len(got.Failures) != 10 {
			t.Fatalf("%d names after restoring 1000, want MaxNames (10)", len(got.Failures))
		}
		for name := range got.Failures {
			var i int
			if _, err := fmt.Sscanf(name, "n%d.test", &i); err != nil || i < 990 {
				t.Errorf("kept %q, want the 10 newest", name)
			}
		}
	})
}

// BenchmarkRecordNewNameFull: a new failing name when MaxNames (10,000)
// are remembered, as in a flood of names that fail. Each Record must not
// scan every name (it did: about 1 ms at 10,000); amortised, it sorts
// them once per 625 new names.
func BenchmarkRecordNewNameFull(b *testing.B) {
	var f FailureBackoff
	names := make([]string, 10_000+b.N)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.test", i)
	}
	for i := range 10_000 {
		f.Record(names[i], t0.Add(time.Duration(i)*time.Millisecond))
	}
	b.ResetTimer()
	for i := range b.N {
		f.Record(names[10_000+i], t0.Add(time.Duration(10_000+i)*time.Millisecond))
	}
}

func TestFailureBackoffConcurrent(t *testing.T) {
	var b FailureBackoff
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			name := fmt.Sprintf("n%d.test", i%5)
			for j := range 20 {
				now := t0.Add(time.Duration(i*20+j) * time.Second)
				b.Record(name, now)
				b.Allowed(name, now)
				if j%5 == 0 {
					b.Restore(b.State())
				}
			}
		})
	}
	wg.Wait()
	for name, times := range b.State().Failures {
		if len(times) > 5 || !strings.HasSuffix(name, ".test") {
			t.Errorf("State() has %q with %d times, want at most 5", name, len(times))
		}
	}
}

// A name the CA rejects outright waits a whole window, also after a
// restore from its state, while a name failing once waits a minute.
func TestFailureBackoffRejected(t *testing.T) {
	var b FailureBackoff
	b.RecordRejected("forbidden.test", t0)
	b.Record("flaky.test", t0)
	if ok, retry := b.Allowed("forbidden.test", t0.Add(59*time.Minute)); ok || retry.Sub(t0) < 59*time.Minute || retry.Sub(t0) > time.Hour {
		t.Errorf("rejected name after 59 min: Allowed = %v, retry t0+%v; want held back until about t0+1h", ok, retry.Sub(t0))
	}
	if ok, _ := b.Allowed("forbidden.test", t0.Add(time.Hour)); !ok {
		t.Error("rejected name still held back after the window")
	}
	if ok, _ := b.Allowed("flaky.test", t0.Add(time.Minute)); !ok {
		t.Error("a name that failed once is held back past its minute")
	}
	var restored FailureBackoff
	restored.Restore(b.State())
	if ok, _ := restored.Allowed("forbidden.test", t0.Add(30*time.Minute)); ok {
		t.Error("restored state lets a rejected name through after 30 min")
	}
}
