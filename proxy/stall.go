package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStallTimeout is how long a read of a request's body or a write of
// its response may wait for the client before the request is ended: as
// nginx's client_body_timeout and send_timeout (60 s), the time between
// two reads or two writes, not the whole transfer, which may rightly
// take hours (an upload, a stream).
const DefaultStallTimeout = time.Minute

// stallWatch ends a request whose client stopped sending its body or
// reading the response: a read of the body or a write of the response
// blocked for longer than the timeout is cut with a deadline in the past
// (http.ResponseController), which fails it. Only a blocked read or write
// counts: a handler that is not reading (a backend slow to take an
// upload) or not writing (a stream between events) is never cut. Before,
// a few addresses that stalled their uploads held every connection of
// --max-conns, and as many backend connections, for as long as they
// liked (a security trial).
//
// It costs one timer per request, fired once per timeout, and two atomic
// stores per read or write.
type stallWatch struct {
	rc      *http.ResponseController
	timeout time.Duration
	reading atomic.Int64 // when the read in progress started (Unix ns); 0: none
	writing atomic.Int64 // the same for a write
	mu      sync.Mutex   // guards timer
	timer   *time.Timer  // nil once stopped
}

// watch starts watching the body of r and the writes to w; the request is
// served with the returned ResponseWriter and r's Body replaced; stop
// ends the watch (after the handler returns).
func watch(w http.ResponseWriter, r *http.Request, timeout time.Duration) (http.ResponseWriter, func()) {
	s := &stallWatch{rc: http.NewResponseController(w), timeout: timeout}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &stallBody{ReadCloser: r.Body, s: s}
	}
	s.mu.Lock()
	s.timer = time.AfterFunc(timeout, s.check)
	s.mu.Unlock()
	return &stallWriter{ResponseWriter: w, s: s}, s.stop
}

// begin notes that a read or write starts now in *since; end that it
// ended.
func begin(since *atomic.Int64) { since.Store(time.Now().UnixNano()) }
func end(since *atomic.Int64)   { since.Store(0) }

// check cuts a read or write blocked for longer than the timeout, and
// arms the timer for the next moment one could be.
func (s *stallWatch) check() {
	now := time.Now()
	next := s.timeout
	for _, op := range []struct {
		since *atomic.Int64
		cut   func(time.Time) error
	}{{&s.reading, s.rc.SetReadDeadline}, {&s.writing, s.rc.SetWriteDeadline}} {
		start := op.since.Load()
		if start == 0 {
			continue
		}
		if blocked := now.Sub(time.Unix(0, start)); blocked >= s.timeout {
			_ = op.cut(now) // a deadline in the past fails the blocked call
		} else {
			next = min(next, s.timeout-blocked)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer != nil {
		s.timer.Reset(next)
	}
}

// stop ends the watch.
func (s *stallWatch) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timer.Stop()
	s.timer = nil
}

// stallBody is a request body whose reads stallWatch watches.
type stallBody struct {
	io.ReadCloser
	s *stallWatch
}

func (b *stallBody) Read(p []byte) (int, error) {
	begin(&b.s.reading)
	defer end(&b.s.reading)
	return b.ReadCloser.Read(p)
}

// stallWriter is a ResponseWriter whose writes stallWatch watches. It
// unwraps (http.ResponseController), flushes and hijacks as the writer it
// wraps does.
type stallWriter struct {
	http.ResponseWriter
	s *stallWatch
}

func (w *stallWriter) Write(p []byte) (int, error) {
	begin(&w.s.writing)
	defer end(&w.s.writing)
	return w.ResponseWriter.Write(p)
}

// Flush sends what is buffered, as a blocked write.
func (w *stallWriter) Flush() {
	begin(&w.s.writing)
	defer end(&w.s.writing)
	_ = w.s.rc.Flush()
}

// Hijack hands the connection over (an upgrade); the watch has no say in
// what follows.
func (w *stallWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.s.rc.Hijack() }

// Unwrap returns the ResponseWriter wrapped, for http.ResponseController.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
