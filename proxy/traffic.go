package proxy

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/redact"
)

// Traffic counts the requests a Handler answered, for metrics: by class of
// status code, with how long they took, and the backend failures among
// them by kind. Every count is an atomic: no lock on the request path, and
// a fixed size whatever the number of names served (no label per name).
// The zero Traffic is ready to use; the Handlers a reload swaps in may
// share one, so that counts go on across reloads.
type Traffic struct {
	classes  [6]atomic.Uint64 // by status / 100; [0]: any other status
	buckets  [len(DurationBuckets) + 1]atomic.Uint64
	sumNanos atomic.Uint64
	failures [len(failureKinds)]atomic.Uint64
}

// DurationBuckets are the upper bounds, in seconds, of the buckets of
// TrafficCounts.Durations: from the 5 ms of a local backend's answer to the
// minute of a slow one; longer requests (streams, WebSockets, downloads)
// count in the last, unbounded, bucket.
var DurationBuckets = [...]float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// The kinds of backend failures Traffic counts.
const (
	// FailureUnreachable is a backend that could not be reached, or failed
	// before its answer: a 502 page.
	FailureUnreachable = "unreachable"
	// FailureTimeout is a backend that did not start its answer in time:
	// a 504 page.
	FailureTimeout = "timeout"
	// FailureStopping is a request that still waited for its backend when
	// the Server's Shutdown reached its deadline: a 503 page.
	FailureStopping = "stopping"
	// FailureCut is a backend that stopped sending its answer before its
	// end (it closed the connection, or crashed): the client got part of
	// it, cut short.
	FailureCut = "cut"
)

var failureKinds = [...]string{FailureUnreachable, FailureTimeout, FailureStopping, FailureCut}

// TrafficCounts is a snapshot of a Traffic.
type TrafficCounts struct {
	// Classes counts the requests answered by class of status code:
	// "1xx" (an upgrade, WebSocket), "2xx", ... "5xx", and "other".
	Classes map[string]uint64
	// Durations counts the requests that took at most DurationBuckets[i]
	// seconds in Durations[i] (each bucket holds only its own, not the
	// ones below it), and longer ones in the last.
	Durations [len(DurationBuckets) + 1]uint64
	// Seconds is the time all the requests took together.
	Seconds float64
	// Failures counts backend failures by kind (FailureUnreachable, ...).
	Failures map[string]uint64
}

// Counts returns the counts so far.
func (t *Traffic) Counts() TrafficCounts {
	c := TrafficCounts{Classes: make(map[string]uint64, len(t.classes)), Failures: make(map[string]uint64, len(failureKinds))}
	for i := range t.classes {
		name := "other"
		if i > 0 {
			name = string(rune('0'+i)) + "xx"
		}
		c.Classes[name] = t.classes[i].Load()
	}
	for i := range t.buckets {
		c.Durations[i] = t.buckets[i].Load()
	}
	c.Seconds = time.Duration(t.sumNanos.Load()).Seconds()
	for i, kind := range failureKinds {
		c.Failures[kind] = t.failures[i].Load()
	}
	return c
}

// count adds one request that was answered status and took d.
func (t *Traffic) count(status int, d time.Duration) {
	class := status / 100
	if class < 1 || class >= len(t.classes) {
		class = 0
	}
	t.classes[class].Add(1)
	i := 0
	for i < len(DurationBuckets) && d.Seconds() > DurationBuckets[i] {
		i++
	}
	t.buckets[i].Add(1)
	t.sumNanos.Add(uint64(max(d, 0)))
}

// fail counts a backend failure of kind.
func (t *Traffic) fail(kind string) {
	if t == nil {
		return
	}
	for i, k := range failureKinds {
		if k == kind {
			t.failures[i].Add(1)
		}
	}
}

// maxLoggedAgent bounds the User-Agent an access log line quotes: a header
// may be 64 KiB, which one request would copy into the log.
const maxLoggedAgent = 256

// recorder is the ResponseWriter of a request that is counted or logged:
// it notes the status and the body bytes written. It unwraps
// (http.ResponseController), so flushes reach the writer it wraps, and it
// hijacks (an upgrade) through it, noting 101.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 || w.status < 200 && status >= 200 { // 1xx informational answers come first
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 || w.status < 200 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Hijack hands the connection over for an upgrade, whose 101 the backend's
// answer, written on the connection, holds.
func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, brw, err
}

// Unwrap returns the ResponseWriter wrapped, for http.ResponseController.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish counts the request in t (if not nil) and logs it to access (if
// not nil) once it has been answered.
func (w *recorder) finish(r *http.Request, t *Traffic, access *slog.Logger, start time.Time, rt *routed) {
	d := time.Since(start)
	status := w.status
	if status == 0 { // the handler wrote nothing: net/http sends 200
		status = http.StatusOK
	}
	if t != nil {
		t.count(status, d)
	}
	if access == nil {
		return
	}
	name, backend := rt.name, ""
	if name == "" { // not routed: the Host the client sent
		name = r.Host
	}
	if rt.backend != nil {
		backend = redact.URL(rt.backend.String())
	}
	agent := r.UserAgent()
	if len(agent) > maxLoggedAgent {
		agent = agent[:maxLoggedAgent]
	}
	access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("name", name), slog.String("remote_ip", remoteIP(r)), slog.String("method", r.Method),
		slog.String("path", r.URL.EscapedPath()), slog.String("proto", r.Proto), slog.Int("status", status),
		slog.Int64("bytes", w.bytes), slog.Duration("duration", d), slog.String("backend", backend),
		slog.String("user_agent", agent))
}
