package testca

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The lines of Pebble's log that the counters count (wfe/wfe.go at the
// pinned version; TestCounters fails if an upgrade changes them).
const (
	// logOrder is logged once per order created: `Added order %q to the db`.
	logOrder = "Added order "
	// logReplacement is logged once per order whose replaces field Pebble
	// accepted (RFC 9773): `ARI: order %q is a replacement of %q`.
	logReplacementPrefix = "ARI: order "
	logReplacement       = " is a replacement of "
	// logAccount is logged once per account created, not for a lookup of an
	// existing one: `There are now %d accounts in memory`.
	logAccount = " accounts in memory"
)

// waitTimeout bounds WaitFor and WaitForLog.
const waitTimeout = 10 * time.Second

// maxLines bounds the lines a logWatch keeps for WaitForLog.
const maxLines = 200_000

// logWatch follows the log of one Pebble process.
type logWatch struct {
	orders, replacements, accounts atomic.Int64

	mu      sync.Mutex // guards lines and changed
	lines   []string
	changed chan struct{} // closed and replaced at every line
}

func newLogWatch() *logWatch { return &logWatch{changed: make(chan struct{})} }

// line is the onLine callback of the Pebble process.
func (w *logWatch) line(s string) {
	switch {
	case strings.Contains(s, logOrder):
		w.orders.Add(1)
	case strings.Contains(s, logReplacementPrefix) && strings.Contains(s, logReplacement):
		w.replacements.Add(1)
	case strings.Contains(s, logAccount):
		w.accounts.Add(1)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.lines) < maxLines {
		w.lines = append(w.lines, s)
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// next returns the channel closed at the next line.
func (w *logWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// find returns the first line from index from on that contains substr, and
// the index to search from next time.
func (w *logWatch) find(from int, substr string) (line string, next int, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := from; i < len(w.lines); i++ {
		if strings.Contains(w.lines[i], substr) {
			return w.lines[i], i + 1, true
		}
	}
	return "", len(w.lines), false
}

// Orders returns the number of orders the running Pebble has created, from
// its log. Pebble logs a little after it answers: right after a request,
// use WaitFor for an exact count.
func (c *CA) Orders() int { return int(c.watch.Load().orders.Load()) }

// Replacements returns the number of orders the running Pebble accepted as
// the replacement of an earlier certificate (the replaces field of RFC
// 9773), from its log.
func (c *CA) Replacements() int { return int(c.watch.Load().replacements.Load()) }

// Accounts returns the number of accounts the running Pebble has created,
// from its log; looking up an existing account does not count.
func (c *CA) Accounts() int { return int(c.watch.Load().accounts.Load()) }

// WaitFor waits until cond returns true, checking it at every line Pebble
// logs and every 50 ms, for at most 10 s; then it fails t with what, a
// description of cond. For example:
//
//	ca.WaitFor(t, "one account", func() bool { return ca.Accounts() == 1 })
func (c *CA) WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		next := c.watch.Load().next()
		if cond() {
			return
		}
		select {
		case <-next:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("testca: waiting for %s: not so after %v", what, waitTimeout)
		}
	}
}

// WaitForLog waits until the running Pebble has logged a line containing
// substr, for at most 10 s, and returns the line; then it fails t.
func (c *CA) WaitForLog(t testing.TB, substr string) string {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var w *logWatch
	from := 0
	for {
		if cur := c.watch.Load(); cur != w { // at first, and after a Restart
			w, from = cur, 0
		}
		next := w.next()
		line, n, ok := w.find(from, substr)
		if ok {
			return line
		}
		from = n
		select {
		case <-next:
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("testca: Pebble logged no line containing %q in %v", substr, waitTimeout)
		}
	}
}
