package certkeeper

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// Defaults of Health's zero fields.
const (
	DefaultHealthEvery   = 10 * time.Second
	DefaultHealthTimeout = 3 * time.Second
)

// Health answers a health check (a load balancer's, a container's or
// Kubernetes' probe) of a process serving with a Storage: it is healthy
// while its storage answers. Without storage nothing new can be issued,
// renewed or loaded, though the certificates in memory still serve.
//
// The check is cheap whoever asks and however often: at most one storage
// probe (storage.CheckHealth: for filestore, a file created and removed
// in each of its directories; for Redis and PostgreSQL, one read) runs
// at a time and at most once per Every; checks in between get its
// result. A probe that has not answered within Timeout makes the check
// fail ("storage: not answering") without waiting longer, and no other
// probe starts while it hangs. So an unauthenticated flood of health
// checks costs no storage I/O beyond one probe per Every.
//
// Set the fields before the first Check; they must not change
// afterwards. A Health must not be copied after first use.
type Health struct {
	// Storage is what is probed. Nil means a filestore in
	// DefaultStorageDir(), as for a Manager.
	Storage storage.Storage

	// Every is how long a probe's result is kept. Zero means 10 seconds.
	Every time.Duration

	// Timeout is how long a check waits for a probe. Zero means 3
	// seconds.
	Timeout time.Duration

	// Logger logs when the check starts failing (Warn, with the error in
	// full) and when it passes again (Info). Nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	err     error         // the last result: nil or a *HealthError
	at      time.Time     // when err was found; zero: never
	running chan struct{} // closed when the probe running ends; nil: none runs
	started time.Time     // when the running probe started
	failing bool          // the last result logged was a failure
}

// HealthError is a failed health check.
type HealthError struct {
	// Reason says what fails in a few words that name no path, host or
	// secret, e.g. "storage: permission denied" or "storage: not
	// answering": it is what a health check's 503 answers, to anyone.
	Reason string
	// Err is the probe's error, in full (paths included): for logs.
	Err error
}

func (e *HealthError) Error() string { return "health check: " + e.Reason + ": " + e.Err.Error() }

func (e *HealthError) Unwrap() error { return e.Err }

func (h *Health) every() time.Duration {
	if h.Every > 0 {
		return h.Every
	}
	return DefaultHealthEvery
}

func (h *Health) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return DefaultHealthTimeout
}

func (h *Health) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// Check returns nil while the storage answers, else a *HealthError. It
// returns the last probe's result if it is younger than Every; otherwise
// it starts a probe (unless one runs) and waits for it until Timeout
// after its start, or until ctx is done (ctx's error is returned).
func (h *Health) Check(ctx context.Context) error {
	h.mu.Lock()
	if !h.at.IsZero() && time.Since(h.at) < h.every() {
		err := h.err
		h.mu.Unlock()
		return err
	}
	if h.running == nil {
		h.running, h.started = make(chan struct{}), time.Now()
		go h.probe(h.running)
	}
	done, deadline := h.running, h.started.Add(h.timeout())
	h.mu.Unlock()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.err
	case <-ctx.Done():
		return fmt.Errorf("health check: %w", ctx.Err())
	case <-timer.C:
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running != done { // it ended meanwhile
		return h.err
	}
	h.record(&HealthError{Reason: "storage: not answering",
		Err: fmt.Errorf("the storage probe has not answered in %v: %w", time.Since(h.started).Round(time.Millisecond), context.DeadlineExceeded)})
	return h.err
}

// probe runs one storage probe, records its result and closes done.
func (h *Health) probe(done chan struct{}) {
	st := h.Storage
	if st == nil {
		st = filestore.New(DefaultStorageDir())
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout())
	err := storage.CheckHealth(ctx, st)
	cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.record(&HealthError{Reason: "storage: " + healthReason(err), Err: err})
	} else {
		h.record(nil)
	}
	h.running = nil
	close(done)
}

// record keeps err (nil or a *HealthError) as the last result, and logs
// a change between passing and failing. h.mu is held.
func (h *Health) record(err error) {
	h.err, h.at = err, time.Now()
	switch {
	case err != nil && !h.failing:
		h.failing = true
		h.logger().Warn("health check failing: the storage does not answer as it should", slog.Any("err", err))
	case err == nil && h.failing:
		h.failing = false
		h.logger().Info("health check passes again: the storage answers")
	}
}

// healthReason names what err says in a few words for anyone to read:
// no path, no host.
func healthReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "not answering"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, syscall.EROFS):
		return "read-only file system"
	case errors.Is(err, syscall.ENOSPC):
		return "no space left"
	case errors.As(err, new(*net.OpError)):
		return "unreachable"
	}
	return "failing"
}

// ServeHTTP answers a health check: GET or HEAD, 200 "ok" while Check
// passes, else 503 with the HealthError's Reason ("storage: permission
// denied"); 405 for other methods. It asks for no credential: the
// answer reveals nothing else.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeHealth(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	err := h.Check(r.Context())
	switch he, ok := errors.AsType[*HealthError](err); {
	case err == nil:
		writeHealth(w, http.StatusOK, "ok")
	case ok:
		writeHealth(w, http.StatusServiceUnavailable, he.Reason)
	default: // the client went away
		writeHealth(w, http.StatusServiceUnavailable, "not answering")
	}
}

// writeHealth writes a health check's plain-text answer.
func writeHealth(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}

// Health returns the Manager's health check (Health), on its Storage and
// Logger, one for every caller: a server answering it on several
// listeners probes the storage once per Health.Every. Its Every and
// Timeout may be set before its first Check. It does not start the
// Manager.
func (m *Manager) Health() *Health {
	m.healthOnce.Do(func() {
		m.health.Storage, m.health.Logger = m.Storage, m.Logger
	})
	return &m.health
}
