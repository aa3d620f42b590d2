package renewal

import (
	"container/heap"
	"sync"
	"time"
)

// DefaultWorkers is the number of run calls a Scheduler makes at once when
// New is given no positive number. Renewals wait mostly on the network, so
// a few overlap well; many would only queue at the CA and its rate limits.
const DefaultWorkers = 4

// maxSleep bounds each timer wait. Timers run on the monotonic clock, which
// stops while a machine is suspended and ignores steps of the wall clock,
// whereas due times are wall-clock instants from certificates. Waking at
// least once a minute to read the wall clock again bounds how late such a
// drift can make a renewal.
const maxSleep = time.Minute

// Scheduler calls a function for each key when the key's time comes: one
// goroutine and one timer, reset to the earliest entry of a heap, serve any
// number of keys, instead of a goroutine and timer per certificate.
//
// Each key has at most one pending time; scheduling it again moves it. When
// the time comes the entry is removed and run(key) is called on a new
// goroutine, with at most the Scheduler's worker count of calls in progress
// at once; due keys beyond that wait, in time order, for a call to return,
// so hundreds of thousands of certificates coming due together (a mass
// revocation, a restart after an outage) renew a few at a time. run is never
// called twice at once for the same key: a key that comes due while its own
// call is in progress is held until that call returns, then runs.
//
// run may call any method but Close, including Schedule for its own key:
// that is how a renewal plans the next one or a retry. Run order among keys
// due at the same instant is the order in which they were scheduled.
//
// Times are compared on the wall clock (monotonic readings are stripped),
// like the certificate times they come from. All methods are safe for
// concurrent use.
type Scheduler struct {
	run     func(key string)
	workers int

	wake chan struct{} // capacity 1: "the heap head or the free slots changed"
	done chan struct{} // closed by Close
	once sync.Once     // closes done
	wg   sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	queue   queue
	entries map[string]*entry    // the keys in queue
	held    map[string]time.Time // keys that came due during their own run
	running map[string]struct{}  // keys whose run is in progress
	seq     uint64               // schedule order, for ties
	closed  bool
}

// New returns a Scheduler that calls run(key) when key's time comes, with
// at most workers calls in progress at once (DefaultWorkers if workers is
// not positive), and starts its goroutine. Close stops it. New panics if run
// is nil.
func New(run func(key string), workers int) *Scheduler {
	if run == nil {
		panic("renewal: New with nil run")
	}
	if workers <= 0 {
		workers = DefaultWorkers
	}
	s := &Scheduler{
		run:     run,
		workers: workers,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		entries: make(map[string]*entry),
		held:    make(map[string]time.Time),
		running: make(map[string]struct{}),
	}
	s.wg.Add(1)
	go s.loop()
	return s
}

// Schedule sets key's time to at, adding the key or moving it if it is
// already pending. A time in the past means as soon as a worker is free.
// Scheduling a key whose run is in progress does not affect that call; the
// key runs again at at, or when the call returns if that is later.
func (s *Scheduler) Schedule(key string, at time.Time) {
	at = at.Round(0)
	s.mu.Lock()
	delete(s.held, key)
	e := s.entries[key]
	s.seq++
	if e != nil {
		e.at, e.seq = at, s.seq
		heap.Fix(&s.queue, e.index)
	} else {
		e = &entry{key: key, at: at, seq: s.seq}
		heap.Push(&s.queue, e)
		s.entries[key] = e
	}
	head := s.queue[0] == e
	s.mu.Unlock()
	if head {
		// The timer may be set for a later time. A move to a later time,
		// or of an entry that is not the head, needs no wake-up: the timer
		// then fires early at worst, and the loop sets it again.
		s.signal()
	}
}

// Remove forgets key's pending time, if any. A run of key in progress is
// not interrupted.
func (s *Scheduler) Remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, key)
	if e := s.entries[key]; e != nil {
		heap.Remove(&s.queue, e.index)
		delete(s.entries, key)
	}
}

// When reports key's pending time, and whether it has one.
func (s *Scheduler) When(key string) (at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.held[key]; ok {
		return at, true
	}
	if e := s.entries[key]; e != nil {
		return e.at, true
	}
	return time.Time{}, false
}

// Next reports the pending key with the earliest time, for status
// displays; ok is false if no key is pending. A key whose time has passed
// but that waits for a worker or for its own run counts as pending.
func (s *Scheduler) Next() (key string, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		key, at, ok = s.queue[0].key, s.queue[0].at, true
	}
	for k, t := range s.held { // at most workers entries
		if !ok || t.Before(at) || (t.Equal(at) && k < key) {
			key, at, ok = k, t, true
		}
	}
	return key, at, ok
}

// Len returns the number of pending keys.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries) + len(s.held)
}

// Close stops the Scheduler and waits for its goroutine and for the run
// calls in progress to return; no run call is in progress or starts after
// Close returns. The Manager should make its runs return promptly first,
// by cancelling the context they use. Close must not be called from run:
// it would wait for itself. Pending keys stay visible to Next, When and Len,
// and Schedule and Remove still update them, but nothing runs any more.
// Close may be called more than once.
func (s *Scheduler) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
	})
	s.wg.Wait()
}

// signal wakes the loop without blocking; one pending wake-up is enough.
func (s *Scheduler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loop starts the runs that are due and sleeps until the next one is, a
// worker is freed, or the heap head changes.
func (s *Scheduler) loop() {
	defer s.wg.Done()
	timer := time.NewTimer(maxSleep)
	defer timer.Stop()
	for {
		wait := s.dispatch()
		var fire <-chan time.Time
		if wait > 0 {
			timer.Reset(wait) // Go ≥ 1.23: no stale tick survives Reset
			fire = timer.C
		} else {
			timer.Stop()
		}
		select {
		case <-fire:
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}

// dispatch starts runs for due keys while workers are free and returns how
// long to sleep before looking again, or 0 to sleep until woken (nothing
// pending, all workers busy, or closed).
func (s *Scheduler) dispatch() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0
	}
	now := time.Now()
	for len(s.running) < s.workers && len(s.queue) > 0 && !s.queue[0].at.After(now) {
		e := heap.Pop(&s.queue).(*entry)
		delete(s.entries, e.key)
		if _, busy := s.running[e.key]; busy {
			s.held[e.key] = e.at
			continue
		}
		s.running[e.key] = struct{}{}
		s.wg.Add(1)
		go s.do(e.key)
	}
	if len(s.running) >= s.workers || len(s.queue) == 0 {
		return 0
	}
	return min(s.queue[0].at.Sub(now), maxSleep)
}

// do calls run for key and then frees its worker, requeueing key if it came
// due meanwhile.
func (s *Scheduler) do(key string) {
	defer s.wg.Done()
	s.run(key)
	s.mu.Lock()
	delete(s.running, key)
	if at, ok := s.held[key]; ok {
		delete(s.held, key)
		s.seq++
		e := &entry{key: key, at: at, seq: s.seq}
		heap.Push(&s.queue, e)
		s.entries[key] = e
	}
	s.mu.Unlock()
	s.signal()
}

// entry is one pending key in the heap.
type entry struct {
	key   string
	at    time.Time // wall clock only
	seq   uint64    // when it was last scheduled; orders equal times
	index int       // position in queue, kept by Swap, Push and Pop
}

// queue is a min-heap of entries by (at, seq), for container/heap.
type queue []*entry

func (q queue) Len() int { return len(q) }

func (q queue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}

func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = i
	q[j].index = j
}

func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *queue) Pop() any {
	old := *q
	n := len(old) - 1
	e := old[n]
	old[n] = nil // let the entry be collected
	*q = old[:n]
	e.index = -1
	return e
}
