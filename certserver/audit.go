package certserver

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultAuditBacklog is how many bytes of audit lines an AuditWriter
// holds while its writer is slow or failing (some thousands of lines);
// beyond it, Write refuses lines.
const DefaultAuditBacklog = 1 << 20

// ErrAuditBacklog is the error of an AuditWriter whose backlog is full:
// its writer has not kept up (a stalled disk) or keeps failing.
var ErrAuditBacklog = errors.New("audit log backlog full: the audit log is not being written")

// Retry delays of a failing AuditWriter: the first retry after
// auditRetryMin, doubling up to auditRetryMax.
const (
	auditRetryMin = time.Second
	auditRetryMax = 10 * time.Second
)

// AuditWriter is the io.Writer under the audit log: each Write (one log
// line) is appended to a buffer and written to the underlying writer by a
// background goroutine as soon as it is free, so that many lines arriving
// together go out in one write instead of one system call per key handed
// out. A line reaches the file one write's time after it is logged; Close
// writes what is left.
//
// It fails loudly and stays bounded: each failed write is logged when it
// happens, the lines it did not write are kept and retried (after 1 s,
// then doubling up to 10 s) until a write succeeds, and Err reports the
// failure meanwhile, so that a server can refuse to hand out keys it
// cannot record (Handler.AuditErr). At most DefaultAuditBacklog bytes are
// held; Write refuses lines beyond that (ErrAuditBacklog), and Err
// reports it until the backlog is written.
type AuditWriter struct {
	w       io.Writer
	logger  *slog.Logger
	mu      sync.Mutex
	cond    *sync.Cond // signalled after each write attempt; uses mu
	buf     []byte     // lines not yet handed to the writer; guarded by mu
	held    int        // bytes the writer is writing now; guarded by mu
	seq     uint64     // lines accepted so far; guarded by mu
	tried   uint64     // lines a write has been attempted for; guarded by mu
	dropped int        // lines refused since the last report; guarded by mu
	closed  bool       // guarded by mu
	stopped bool       // run has returned; guarded by mu
	failure atomic.Pointer[error]
	pending chan struct{}
	done    chan struct{}
}

// NewAuditWriter starts an AuditWriter writing to w. Failed writes are
// logged to logger (nil: slog.Default()) as they happen.
func NewAuditWriter(w io.Writer, logger *slog.Logger) *AuditWriter {
	if logger == nil {
		logger = slog.Default()
	}
	a := &AuditWriter{w: w, logger: logger, pending: make(chan struct{}, 1), done: make(chan struct{})}
	a.cond = sync.NewCond(&a.mu)
	go a.run()
	return a
}

// Write queues p (a whole log line) for writing. It fails after Close,
// and while the backlog is full (ErrAuditBacklog); a failure of the
// underlying writer is reported by Err, not here, as it happens later.
func (a *AuditWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if a.held+len(a.buf)+len(p) > DefaultAuditBacklog {
		a.dropped++
		first := a.dropped == 1
		a.setFailure(ErrAuditBacklog)
		a.mu.Unlock()
		if first {
			a.logger.Error("audit log backlog full: audit lines are being dropped", slog.Int("backlog_bytes", DefaultAuditBacklog))
		}
		return 0, ErrAuditBacklog
	}
	a.buf = append(a.buf, p...)
	a.seq++
	a.mu.Unlock()
	a.signal()
	return len(p), nil
}

// Err returns nil while audit lines are being written, and the reason
// when they are not: the last write failed (its lines are retried until
// one succeeds), or the backlog is full. It takes no lock.
func (a *AuditWriter) Err() error {
	if p := a.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// Sync waits until a write has been attempted for every line queued
// before it was called, and returns Err. A caller uses it to find out at
// once whether the audit log can be written (at start, say).
func (a *AuditWriter) Sync() error {
	a.mu.Lock()
	target := a.seq
	a.mu.Unlock()
	a.signal()
	a.mu.Lock()
	for a.tried < target && !a.stopped {
		a.cond.Wait()
	}
	a.mu.Unlock()
	return a.Err()
}

// signal wakes the writer goroutine; a wake-up already due is enough.
func (a *AuditWriter) signal() {
	select {
	case a.pending <- struct{}{}:
	default:
	}
}

// setFailure records err as the current failure; a.mu must be held, so
// that a success recorded by run cannot interleave.
func (a *AuditWriter) setFailure(err error) {
	a.failure.Store(&err)
}

func (a *AuditWriter) run() {
	defer func() {
		a.mu.Lock()
		a.stopped = true
		a.cond.Broadcast()
		a.mu.Unlock()
		close(a.done)
	}()
	var spare []byte
	var retry <-chan time.Time // while failing: the next attempt
	var wait time.Duration
	for {
		select {
		case <-a.pending:
			if retry != nil && !a.isClosed() {
				continue // failing: new lines wait for the retry, so a busy server does not turn each into a failed write
			}
		case <-retry:
		}
		a.mu.Lock()
		out, seq, closed := a.buf, a.seq, a.closed
		a.buf, a.held = spare[:0], len(out)
		a.mu.Unlock()

		var n int
		var err error
		if len(out) > 0 {
			n, err = a.w.Write(out)
			if err == nil && n < len(out) {
				err = io.ErrShortWrite
			}
		}

		a.mu.Lock()
		if err != nil {
			// Keep what was not written, ahead of the lines queued since.
			rest := append(out[:0], out[n:]...)
			rest = append(rest, a.buf...)
			spare, a.buf, a.held = a.buf[:0], rest, 0
			a.setFailure(err)
			backlog := len(a.buf)
			a.mu.Unlock()
			if closed {
				a.logger.Error("writing the audit log failed at shutdown: its last lines are lost", slog.Int("lost_bytes", backlog), slog.Any("err", err))
				a.attempted(seq)
				return
			}
			wait = min(max(2*wait, auditRetryMin), auditRetryMax)
			retry = time.After(wait)
			a.logger.Error("writing the audit log failed", slog.Any("err", err), slog.Int("backlog_bytes", backlog), slog.Duration("retry_in", wait))
			a.attempted(seq)
			continue
		}
		spare, a.held = out[:0], 0
		recovered, dropped := a.failure.Load() != nil, a.dropped
		a.failure.Store(nil)
		a.dropped = 0
		a.mu.Unlock()
		if recovered {
			a.logger.Warn("the audit log is written again", slog.Int("dropped_lines", dropped))
		}
		a.attempted(seq)
		retry, wait = nil, 0
		if closed {
			return
		}
	}
}

// attempted records that a write has been attempted (and its outcome
// logged) for the first seq lines, for Sync.
func (a *AuditWriter) attempted(seq uint64) {
	a.mu.Lock()
	a.tried = seq
	a.cond.Broadcast()
	a.mu.Unlock()
}

func (a *AuditWriter) isClosed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.closed
}

// Close writes the lines still queued (one attempt, even while failing)
// and stops the writer; it does not close the underlying writer. It
// returns Err: nil if everything was written.
func (a *AuditWriter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return a.Err()
	}
	a.closed = true
	a.mu.Unlock()
	// run sees the closed flag on its next round, whether this signal or
	// one already queued wakes it, flushes once more and ends.
	a.signal()
	<-a.done
	return a.Err()
}
