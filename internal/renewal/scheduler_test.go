package renewal

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Every Scheduler test runs in a synctest bubble: hours pass instantly, a
// run happens exactly at its time, and synctest.Test fails ("deadlock: main
// bubble goroutine has exited but blocked goroutines remain") if a goroutine
// the test started (the Scheduler's loop, a run) is still blocked when the
// test function returns, which is how these tests prove Close ends them.
// (A Scheduler left open with keys pending would instead wake every minute
// of fake time forever: the test would hang until -timeout.)

// recorder is a run function that records which key ran when, relative to
// its start.
type recorder struct {
	start time.Time
	mu    sync.Mutex // guards runs
	runs  []string   // "key@offset"
}

func newRecorder() *recorder { return &recorder{start: time.Now()} }

// run records key; a key named "busy" then holds its worker for an hour.
func (r *recorder) run(key string) {
	r.mu.Lock()
	r.runs = append(r.runs, key+"@"+time.Since(r.start).String())
	r.mu.Unlock()
	if key == "busy" {
		time.Sleep(time.Hour)
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

func TestSchedulerOrder(t *testing.T) {
	type op struct {
		key    string
		at     time.Duration // after start; for a remove, ignored
		remove bool
	}
	tests := []struct {
		name string
		ops  []op
		want []string
	}{
		{
			name: "time order",
			ops:  []op{{key: "c", at: 3 * time.Hour}, {key: "a", at: time.Hour}, {key: "b", at: 2 * time.Hour}},
			want: []string{"a@1h0m0s", "b@2h0m0s", "c@3h0m0s"},
		},
		{
			name: "ties in schedule order",
			ops:  []op{{key: "z", at: time.Hour}, {key: "y", at: time.Hour}, {key: "x", at: time.Hour}},
			want: []string{"z@1h0m0s", "y@1h0m0s", "x@1h0m0s"},
		},
		{
			name: "past time runs now",
			ops:  []op{{key: "a", at: -time.Hour}},
			want: []string{"a@0s"},
		},
		{
			name: "keys waiting for a worker run in time order",
			ops: []op{{key: "busy", at: -2 * time.Hour}, {key: "late", at: -time.Minute}, {key: "later", at: 30 * time.Minute},
				{key: "earliest", at: -time.Hour}},
			want: []string{"busy@0s", "earliest@1h0m0s", "late@1h0m0s", "later@1h0m0s"},
		},
		{
			name: "move earlier wakes the timer",
			ops:  []op{{key: "a", at: 5 * time.Hour}, {key: "a", at: time.Hour}},
			want: []string{"a@1h0m0s"},
		},
		{
			name: "move later skips the old time",
			ops:  []op{{key: "a", at: time.Hour}, {key: "b", at: 2 * time.Hour}, {key: "a", at: 3 * time.Hour}},
			want: []string{"b@2h0m0s", "a@3h0m0s"},
		},
		{
			name: "move in the middle",
			ops: []op{{key: "a", at: time.Hour}, {key: "b", at: 2 * time.Hour}, {key: "c", at: 3 * time.Hour},
				{key: "c", at: 90 * time.Minute}},
			want: []string{"a@1h0m0s", "c@1h30m0s", "b@2h0m0s"},
		},
		{
			name: "remove",
			ops: []op{{key: "a", at: time.Hour}, {key: "b", at: 2 * time.Hour}, {key: "c", at: 3 * time.Hour},
				{key: "b", remove: true}, {key: "a", remove: true}, {key: "nobody", remove: true}},
			want: []string{"c@3h0m0s"},
		},
		{
			name: "remove then add again",
			ops:  []op{{key: "a", at: time.Hour}, {key: "a", remove: true}, {key: "a", at: 2 * time.Hour}},
			want: []string{"a@2h0m0s"},
		},
		{
			name: "subsecond and long",
			ops:  []op{{key: "long", at: 90 * day}, {key: "short", at: 1500 * time.Millisecond}},
			want: []string{"short@1.5s", "long@2160h0m0s"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRecorder()
				s := New(r.run, 1)
				defer s.Close()
				for _, o := range tt.ops {
					if o.remove {
						s.Remove(o.key)
					} else {
						s.Schedule(o.key, r.start.Add(o.at))
					}
				}
				time.Sleep(91 * day)
				synctest.Wait()
				if got := r.got(); !slices.Equal(got, tt.want) {
					t.Errorf("runs = %q, want %q", got, tt.want)
				}
				if n := s.Len(); n != 0 {
					t.Errorf("Len() = %d after all ran, want 0", n)
				}
			})
		})
	}
}

func TestSchedulerStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		s := New(func(string) {}, 1)
		defer s.Close()
		if k, at, ok := s.Next(); ok {
			t.Errorf("Next() on empty = %q, %v, true; want false", k, at)
		}
		if at, ok := s.When("a"); ok {
			t.Errorf("When(%q) on empty = %v, true; want false", "a", at)
		}
		s.Schedule("b", start.Add(2*time.Hour))
		s.Schedule("a", start.Add(3*time.Hour))
		s.Schedule("c", start.Add(time.Hour))
		if k, at, ok := s.Next(); !ok || k != "c" || !at.Equal(start.Add(time.Hour)) {
			t.Errorf("Next() = %q, %v, %v; want c, start+1h, true", k, at, ok)
		}
		if at, ok := s.When("a"); !ok || !at.Equal(start.Add(3*time.Hour)) {
			t.Errorf("When(a) = %v, %v; want start+3h, true", at, ok)
		}
		if n := s.Len(); n != 3 {
			t.Errorf("Len() = %d, want 3", n)
		}
		// A time with a monotonic reading is stored without one.
		s.Schedule("a", time.Now().Add(4*time.Hour))
		if at, _ := s.When("a"); at != at.Round(0) {
			t.Errorf("When(a) = %v keeps a monotonic reading", at)
		}
		time.Sleep(90 * time.Minute)
		if k, _, ok := s.Next(); !ok || k != "b" {
			t.Errorf("Next() after c ran = %q, %v; want b", k, ok)
		}
		if n := s.Len(); n != 2 {
			t.Errorf("Len() after c ran = %d, want 2", n)
		}
	})
}

// TestSchedulerRescheduleInRun has run reschedule its own key and use every
// other method, as the Manager's renewal does: none may deadlock.
func TestSchedulerRescheduleInRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var (
			s    *Scheduler
			mu   sync.Mutex
			runs []time.Duration
		)
		s = New(func(key string) {
			mu.Lock()
			runs = append(runs, time.Since(start))
			n := len(runs)
			mu.Unlock()
			s.Next()
			s.Len()
			s.When(key)
			s.Remove("other")
			if n < 3 {
				s.Schedule(key, time.Now().Add(time.Hour))
			}
		}, 1)
		defer s.Close()
		s.Schedule("other", start.Add(2*time.Hour+30*time.Minute))
		s.Schedule("a", start.Add(time.Hour))
		time.Sleep(10 * time.Hour)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		want := []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}
		if !slices.Equal(runs, want) {
			t.Errorf("runs at %v, want %v (other removed before its time)", runs, want)
		}
	})
}

// TestSchedulerSameKeyNotConcurrent schedules a key again while its run is
// in progress: the second run waits for the first, even with free workers.
func TestSchedulerSameKeyNotConcurrent(t *testing.T) {
	tests := []struct {
		name     string
		again    time.Duration // when to schedule a again, after start
		remove   bool          // remove it again after that
		wantRuns []time.Duration
	}{
		{"due during run: runs after it", 0, false, []time.Duration{time.Hour, 2 * time.Hour}},
		{"due after run: runs on time", 3 * time.Hour, false, []time.Duration{time.Hour, 3 * time.Hour}},
		{"removed while held", 0, true, []time.Duration{time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				var (
					mu     sync.Mutex
					active int
					starts []time.Duration
				)
				s := New(func(key string) {
					mu.Lock()
					active++
					if active > 1 {
						t.Errorf("run(%q) called while another run of it is in progress", key)
					}
					starts = append(starts, time.Since(start))
					mu.Unlock()
					time.Sleep(time.Hour)
					mu.Lock()
					active--
					mu.Unlock()
				}, 4)
				defer s.Close()
				s.Schedule("a", start.Add(time.Hour))
				time.Sleep(90 * time.Minute) // a's first run is in progress
				s.Schedule("a", start.Add(tt.again))
				synctest.Wait()
				if at, ok := s.When("a"); !ok || !at.Equal(start.Add(tt.again)) {
					t.Errorf("When(a) during its run = %v, %v; want start+%v, true", at.Sub(start), ok, tt.again)
				}
				if k, _, ok := s.Next(); !ok || k != "a" {
					t.Errorf("Next() during its run = %q, %v; want a, true", k, ok)
				}
				if tt.remove {
					s.Remove("a")
					if n := s.Len(); n != 0 {
						t.Errorf("Len() after Remove = %d, want 0", n)
					}
				}
				time.Sleep(5 * time.Hour)
				mu.Lock()
				defer mu.Unlock()
				if !slices.Equal(starts, tt.wantRuns) {
					t.Errorf("runs started at %v, want %v", starts, tt.wantRuns)
				}
			})
		})
	}
}

func TestSchedulerBoundedConcurrency(t *testing.T) {
	tests := []struct {
		workers, keys int
		wantEnd       time.Duration // when the last run ends
	}{
		{1, 5, 5 * time.Hour},
		{3, 10, 4 * time.Hour},
		{4, 4, time.Hour},
		{0, 9, 3 * time.Hour}, // DefaultWorkers
		{50, 1000, 20 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d workers %d keys", tt.workers, tt.keys), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				var (
					mu           sync.Mutex
					active, peak int
					ran          int
					lastEnd      time.Duration
				)
				workers := tt.workers
				if workers <= 0 {
					workers = DefaultWorkers
				}
				wantPeak := min(workers, tt.keys)
				s := New(func(string) {
					mu.Lock()
					active++
					peak = max(peak, active)
					mu.Unlock()
					time.Sleep(time.Hour)
					mu.Lock()
					active--
					ran++
					lastEnd = time.Since(start)
					mu.Unlock()
				}, tt.workers)
				defer s.Close()
				for i := range tt.keys {
					s.Schedule(strconv.Itoa(i), start)
				}
				time.Sleep(30 * time.Minute)
				if n := s.Len(); n != tt.keys-wantPeak {
					t.Errorf("Len() with %d runs in progress = %d, want %d", wantPeak, n, tt.keys-wantPeak)
				}
				time.Sleep(tt.wantEnd + time.Hour)
				mu.Lock()
				defer mu.Unlock()
				if peak != wantPeak {
					t.Errorf("peak concurrent runs = %d, want %d", peak, wantPeak)
				}
				if ran != tt.keys || lastEnd != tt.wantEnd {
					t.Errorf("%d runs, last ended at %v; want %d, %v", ran, lastEnd, tt.keys, tt.wantEnd)
				}
			})
		})
	}
}

// TestSchedulerMany schedules 100,000 keys over a day and checks each runs
// once, exactly at its time, in time order.
func TestSchedulerMany(t *testing.T) {
	const n = 100_000
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		rnd := rand.New(rand.NewPCG(7, 8))
		want := make(map[string]time.Time, n)
		var (
			mu      sync.Mutex
			got     = make(map[string]time.Time, n)
			last    time.Time
			ordered = true
		)
		s := New(func(key string) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			if _, dup := got[key]; dup {
				t.Errorf("%s ran twice", key)
			}
			got[key] = now
			ordered = ordered && !now.Before(last)
			last = now
		}, 0)
		defer s.Close()
		for i := range n {
			key := "name" + strconv.Itoa(i) + ".test"
			at := start.Add(time.Minute + time.Duration(rnd.Int64N(int64(day)))).Round(time.Second)
			want[key] = at
			s.Schedule(key, at)
		}
		// Move a tenth of them, as ARI answers would.
		for i := 0; i < n; i += 10 {
			key := "name" + strconv.Itoa(i) + ".test"
			at := start.Add(time.Minute + time.Duration(rnd.Int64N(int64(day)))).Round(time.Second)
			want[key] = at
			s.Schedule(key, at)
		}
		if l := s.Len(); l != n {
			t.Fatalf("Len() = %d, want %d", l, n)
		}
		time.Sleep(day + 2*time.Minute)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(got) != n {
			t.Fatalf("%d keys ran, want %d", len(got), n)
		}
		for k, at := range want {
			if !got[k].Equal(at) {
				t.Fatalf("%s ran at %v, want %v", k, got[k].Sub(start), at.Sub(start))
			}
		}
		if !ordered {
			t.Error("runs out of time order")
		}
	})
}

func TestSchedulerClose(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := New(func(string) {}, 1)
			s.Close()
			s.Close() // again: no panic, no wait
		})
	})
	t.Run("pending entries never run", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			r := newRecorder()
			s := New(r.run, 1)
			s.Schedule("a", start.Add(time.Hour))
			s.Close()
			if d := time.Since(start); d != 0 {
				t.Errorf("Close with nothing running took %v, want 0", d)
			}
			s.Schedule("b", start) // after Close: recorded, never run
			time.Sleep(2 * time.Hour)
			if got := r.got(); len(got) != 0 {
				t.Errorf("runs after Close = %q, want none", got)
			}
			if n := s.Len(); n != 2 {
				t.Errorf("Len() after Close = %d, want 2", n)
			}
		})
	})
	t.Run("waits for runs in progress", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			var (
				mu       sync.Mutex
				finished int
			)
			s := New(func(string) {
				time.Sleep(time.Hour)
				mu.Lock()
				finished++
				mu.Unlock()
			}, 2)
			s.Schedule("a", start)
			s.Schedule("b", start.Add(10*time.Minute))
			s.Schedule("c", start.Add(20*time.Minute)) // no free worker: never starts
			time.Sleep(30 * time.Minute)
			var wg sync.WaitGroup
			for range 3 { // concurrent Closes all wait
				wg.Go(func() {
					s.Close()
					mu.Lock()
					defer mu.Unlock()
					if finished != 2 {
						t.Errorf("Close returned with %d of 2 runs finished", finished)
					}
				})
			}
			wg.Wait()
			if d := time.Since(start); d != 70*time.Minute {
				t.Errorf("Close returned at start+%v, want start+1h10m (b's end)", d)
			}
			time.Sleep(2 * time.Hour)
			mu.Lock()
			defer mu.Unlock()
			if finished != 2 {
				t.Errorf("%d runs after Close, want 2 (c must not start)", finished)
			}
		})
	})
}

func TestNewNilRun(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New(nil, 1) did not panic")
		}
	}()
	New(nil, 1)
}

// BenchmarkSchedule measures adding 100,000 keys to an empty Scheduler.
func BenchmarkSchedule(b *testing.B) {
	const n = 100_000
	keys, times := benchEntries(n)
	b.ReportAllocs()
	for b.Loop() {
		s := New(func(string) {}, 0)
		for i, k := range keys {
			s.Schedule(k, times[i])
		}
		s.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
}

// BenchmarkMove measures moving one key among 100,000, as an ARI answer or
// a renewal does.
func BenchmarkMove(b *testing.B) {
	const n = 100_000
	keys, times := benchEntries(n)
	s := New(func(string) {}, 0)
	defer s.Close()
	for i, k := range keys {
		s.Schedule(k, times[i])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Schedule(keys[i%n], times[(i*7919)%n])
		i++
	}
}

// benchEntries returns n keys and times a year or more ahead, so that
// nothing runs during a benchmark.
func benchEntries(n int) ([]string, []time.Time) {
	rnd := rand.New(rand.NewPCG(9, 10))
	base := time.Now().Add(365 * day)
	keys := make([]string, n)
	times := make([]time.Time, n)
	for i := range n {
		keys[i] = "name" + strconv.Itoa(i) + ".test"
		times[i] = base.Add(time.Duration(rnd.Int64N(int64(90 * day))))
	}
	return keys, times
}
