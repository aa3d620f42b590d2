package certkeeper

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/policy"
)

// Refused names are logged once per name per interval, so an operator
// sees why a name gets no certificate, while a scanner sending endless
// made-up names can neither flood the log nor grow memory: the set of
// names logged is bounded and starts afresh each interval.
const (
	refusalInterval = time.Hour
	refusalMax      = 1024 // names remembered per interval; about 256 KiB at most
)

// refusals decides which refused names are logged. The zero value is
// ready; interval and max, if zero, are refusalInterval and refusalMax
// (tests set them).
type refusals struct {
	mu         sync.Mutex
	start      time.Time           // of the current interval
	seen       map[string]struct{} // names logged this interval, at most max
	suppressed int                 // refusals not logged this interval because seen was full
	interval   time.Duration
	max        int
}

// note records that name was refused at now. It reports whether to log
// it (its first refusal this interval, with room left), and whether the
// set just became full (log that the rest of the interval's new names
// are counted, not logged); suppressed is how many refusals the previous
// interval left unlogged, when it has just ended.
func (r *refusals) note(name string, now time.Time) (log, full bool, suppressed int) {
	interval, max := r.interval, r.max
	if interval <= 0 {
		interval = refusalInterval
	}
	if max <= 0 {
		max = refusalMax
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil || now.Sub(r.start) >= interval || now.Before(r.start) {
		suppressed = r.suppressed
		r.start, r.seen, r.suppressed = now, make(map[string]struct{}), 0
	}
	if _, ok := r.seen[name]; ok {
		return false, false, suppressed
	}
	if len(r.seen) >= max {
		r.suppressed++
		return false, false, suppressed
	}
	r.seen[name] = struct{}{}
	return true, len(r.seen) == max, suppressed
}

// size is how many names the current interval remembers.
func (r *refusals) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// logRefused logs that name got no certificate because of err (the
// policy's refusal, or a limit), once per name per interval.
//
// Names the policy allows that a limit held back (the client's, a
// back-off) have an allowance of their own: a scanner's flood of names
// the policy refuses used up the interval's, and an operator's own names
// went unlogged (an ops trial).
func (m *Manager) logRefused(name string, err error) {
	set := &m.refused
	if !errors.Is(err, policy.ErrDenied) && !errors.Is(err, hostname.ErrInvalidName) && !errors.Is(err, ErrNoSNI) && !errors.Is(err, ErrNoPolicy) {
		set = &m.limited
	}
	log, full, suppressed := set.note(name, time.Now())
	if suppressed > 0 {
		m.logger().Warn("more names were refused in the last interval than are logged", slog.Int("unlogged", suppressed),
			slog.Duration("interval", refusalInterval))
	}
	if log {
		m.logger().Info("name refused: no certificate (logged once per name per interval)", slog.String("name", name),
			slog.Any("err", err))
	}
	if full {
		m.logger().Warn("many names refused: further new names are counted, not logged, until the interval ends",
			slog.Duration("interval", refusalInterval))
	}
}
