package certserver

import (
	"io"
	"sync"
)

// AuditWriter is the io.Writer under the audit log: each Write (one log
// line) is appended to a buffer and written to the underlying writer by a
// background goroutine as soon as it is free, so that many lines arriving
// together go out in one write instead of one system call per key handed
// out. A line reaches the file one write's time after it is logged; Close
// writes what is left.
type AuditWriter struct {
	w       io.Writer
	mu      sync.Mutex
	buf     []byte // lines not yet handed to the writer; guarded by mu
	err     error  // the first write error; guarded by mu
	closed  bool   // guarded by mu
	pending chan struct{}
	done    chan struct{}
}

// NewAuditWriter starts an AuditWriter writing to w.
func NewAuditWriter(w io.Writer) *AuditWriter {
	a := &AuditWriter{w: w, pending: make(chan struct{}, 1), done: make(chan struct{})}
	go a.run()
	return a
}

// Write queues p (a whole log line) for writing. It fails once a write to
// the underlying writer has failed, or after Close.
func (a *AuditWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	if a.err != nil || a.closed {
		err := a.err
		a.mu.Unlock()
		if err == nil {
			err = io.ErrClosedPipe
		}
		return 0, err
	}
	a.buf = append(a.buf, p...)
	a.mu.Unlock()
	select {
	case a.pending <- struct{}{}:
	default: // a flush is already due
	}
	return len(p), nil
}

func (a *AuditWriter) run() {
	defer close(a.done)
	var out []byte
	for range a.pending {
		a.mu.Lock()
		out, a.buf = a.buf, out[:0]
		closed := a.closed
		a.mu.Unlock()
		if len(out) > 0 {
			if _, err := a.w.Write(out); err != nil {
				a.mu.Lock()
				if a.err == nil {
					a.err = err
				}
				a.mu.Unlock()
			}
		}
		if closed {
			return
		}
	}
}

// Close writes the lines still queued and stops the writer; it does not
// close the underlying writer. It returns the first write error.
func (a *AuditWriter) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return a.err
	}
	a.closed = true
	a.mu.Unlock()
	// A signal already queued will show run the closed flag set above; else
	// queue one. Either way run flushes once more and ends.
	select {
	case a.pending <- struct{}{}:
	default:
	}
	<-a.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}
