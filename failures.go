package certkeeper

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/limit"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// RenewalError is the last failed renewal of a certificate, as kept in
// storage for "certkeeper status".
//
// Deprecated: it is a record, not an error; use status.Failure, which
// it is an alias of.
type RenewalError = status.Failure

// Bounds of the failures kept in storage for status: one entry per
// failing certificate or name, removed on success. First-issue failures
// (names that never got a certificate) are capped and expire, since the
// names asked for on demand are not bounded by the certificates stored.
const (
	maxFirstIssueFailures = 1000
	firstIssueFailureKeep = 7 * 24 * time.Hour
)

// noteRenewal records the outcome of a renewal attempt for status: the
// failure (err != nil) or its clearing.
func (m *Manager) noteRenewal(ctx context.Context, key string, names []string, err error, retry time.Time, attempt int) {
	if err == nil {
		m.updateFailures(ctx, func(all map[string]status.Failure) bool {
			if _, ok := all[key]; !ok {
				return false
			}
			delete(all, key)
			return true
		}, false)
		return
	}
	f := status.Failure{Names: names, Error: m.explain(err).Error(), At: time.Now().UTC(), RetryAt: retry.UTC(), Attempt: attempt}
	m.updateFailures(ctx, func(all map[string]status.Failure) bool {
		f := f
		f.Since = f.At
		if prev, ok := all[key]; ok {
			f.Since = prev.FailingSince()
		}
		all[key] = f
		return true
	}, false)
}

// endRenewalFailure ends the failing renewal of the record under key, if
// this process may know of one: a first issuance stored a new certificate
// there, in place of one expired, revoked or damaged whose renewals
// failed, which status went on calling failing, with the old error,
// until the new one's first renewal.
func (m *Manager) endRenewalFailure(ctx context.Context, key string) {
	m.resetAttempts(key)
	if m.mayKnowFailure(key) {
		m.noteRenewal(ctx, key, nil, nil, time.Time{}, 0)
	}
}

// resetAttempts forgets the failed attempts of the certificate under key,
// and the renewal time drawn for it: a new certificate is there.
func (m *Manager) resetAttempts(key string) {
	m.renew.mu.Lock()
	delete(m.renew.attempts, key)
	delete(m.renew.planned, key)
	delete(m.renew.refused, key)
	m.renew.mu.Unlock()
}

// noteFirstIssue records the outcome of a first issuance of names for
// status: the failure (err != nil), with the next attempt a handshake may
// make (the failure backoff), or its clearing. Failures that say nothing
// about the name (shutdown, a lock not taken) are not recorded.
func (m *Manager) noteFirstIssue(ctx context.Context, names []string, variant string, err error) {
	key := status.FailingKey(names[0], variant)
	if err == nil {
		if !m.mayKnowFailure(key) {
			return // nothing recorded by this process; others clear their own at their next success
		}
		m.updateFailures(ctx, func(all map[string]status.Failure) bool {
			if _, ok := all[key]; !ok {
				return false
			}
			delete(all, key)
			return true
		}, false)
		return
	}
	if m.ctx.Err() != nil || errors.Is(err, errNoLock) || errors.Is(err, context.Canceled) || budgetRefusal(err) {
		return
	}
	if m.renewsName(names[0], variant) {
		// A stored certificate for the name, expired or revoked (a
		// handshake orders a new one rather than serve it), that this
		// Manager renews: not a first issuance, and its renewal's
		// failures are reported under its key. (A trial saw such a
		// failure listed as a first issuance failing for days after the
		// renewal succeeded, and alerted on.)
		return
	}
	now := time.Now().UTC()
	_, retry := m.lim.failures.Allowed(names[0], now)
	text := m.explain(err).Error()
	m.updateFailures(ctx, func(all map[string]status.Failure) bool {
		f := status.Failure{Names: names, Error: text, At: now, RetryAt: retry.UTC(), Attempt: all[key].Attempt + 1, FirstIssue: true, Since: now}
		if prev, ok := all[key]; ok {
			f.Since = prev.FailingSince()
		}
		all[key] = f
		return true
	}, true)
}

// renewsName reports whether this Manager renews a stored certificate
// whose key is name's (under any issuer).
func (m *Manager) renewsName(name, variant string) bool {
	var keys []string
	for _, iss := range m.allIssuers(name) {
		if key, err := storage.CertificateKeyVariant(iss.ID(), name, variant); err == nil {
			keys = append(keys, key)
		}
	}
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	return slices.ContainsFunc(keys, func(key string) bool { return m.renew.stored[key] != nil })
}

// budgetRefusal reports whether err is an order held back by an order
// budget (the CA account's, Cluster.OrderLimit's): no order was placed and
// nothing failed, so the name is neither backed off nor listed as failing;
// it may be ordered when the budget allows (RetryAt).
func budgetRefusal(err error) bool {
	var rl *limit.RateLimitError
	return errors.As(err, &rl)
}

// noteKeptRetry records for status that Keep tries the failing first
// issuance of name again by itself at next (not at a handshake).
func (m *Manager) noteKeptRetry(ctx context.Context, name string, next time.Time) {
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	name, err := n.Normalize(name)
	if err != nil {
		return
	}
	m.updateFailures(ctx, func(all map[string]status.Failure) bool {
		changed := false
		for _, key := range []string{status.FailingKey(name, ""), status.FailingKey(name, variantRSA)} {
			if f, ok := all[key]; ok && f.FirstIssue {
				f.RetryAt, f.Scheduled = next.UTC(), true
				all[key] = f
				changed = true
			}
		}
		return changed
	}, false)
}

// pruneFirstIssues drops first-issue failures older than
// firstIssueFailureKeep, then the oldest beyond maxFirstIssueFailures.
func pruneFirstIssues(all map[string]status.Failure, now time.Time) {
	var keys []string
	for k, f := range all {
		if !f.FirstIssue {
			continue
		}
		if now.Sub(f.At) > firstIssueFailureKeep {
			delete(all, k)
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) <= maxFirstIssueFailures {
		return
	}
	slices.SortFunc(keys, func(a, b string) int { return all[a].At.Compare(all[b].At) })
	for _, k := range keys[:len(keys)-maxFirstIssueFailures] {
		delete(all, k)
	}
}

// maxQueuedFirstIssues bounds the first-issue failures queued between two
// writes of the stored failures: more than twice what is kept would only
// be pruned again, so in a flood of failing names the older half of them
// is dropped from the queue (each name still backs off; status keeps the
// newest, as it would have).
const maxQueuedFirstIssues = 2 * maxFirstIssueFailures

// failureQueue holds the changes to the stored failures not yet written:
// they are written together, at most about once a second (writeBack), so
// that a flood of failing names costs a write a second, not one per name.
type failureQueue struct {
	mu          sync.Mutex
	changes     []failureChange
	firstIssues int // queued changes that note a first issuance's failure
	unwritten   int // changes queued or being written
	wb          writeBack
}

// failureChange is one queued change to the stored failures.
type failureChange struct {
	apply      func(map[string]status.Failure) bool
	firstIssue bool // it notes a first issuance's failure
}

// updateFailures queues change to the failures stored under
// status.FailuresKey and writes them (writeBack: by the caller when none
// was written in the last second, else soon in the background). The
// stored map is the one every node and "certkeeper status" read; the
// copy kept in memory feeds Stats. A change noting a first issuance's
// failure (firstIssue) may be dropped for newer ones (maxQueuedFirstIssues).
// Writes are serialised within the process; across nodes the last writer
// wins, and a lost entry is written again at that name's next failure.
func (m *Manager) updateFailures(ctx context.Context, change func(map[string]status.Failure) bool, firstIssue bool) {
	q := &m.hk.failures
	q.mu.Lock()
	if firstIssue && q.firstIssues >= maxQueuedFirstIssues {
		q.dropOlderFirstIssues()
	}
	q.changes = append(q.changes, failureChange{change, firstIssue})
	q.unwritten++
	if firstIssue {
		q.firstIssues++
	}
	q.mu.Unlock()
	m.changed(ctx, &q.wb, m.writeFailures, true)
}

// dropOlderFirstIssues drops the older half of the queued first-issue
// failures: once per maxQueuedFirstIssues/2 of them, so a flood costs
// O(1) per failure. A later change of a dropped key (its clearing, Keep's
// next attempt) finds nothing to change, as after a prune. q.mu must be
// held.
func (q *failureQueue) dropOlderFirstIssues() {
	drop := q.firstIssues / 2
	kept := q.changes[:0]
	for _, c := range q.changes {
		if c.firstIssue && drop > 0 {
			drop--
			q.firstIssues--
			q.unwritten--
			continue
		}
		kept = append(kept, c)
	}
	clear(q.changes[len(kept):])
	q.changes = kept
}

// writeFailures applies the queued changes to the stored failures, prunes
// the first issuances beyond their bounds and stores the result if
// anything changed.
func (m *Manager) writeFailures(ctx context.Context) {
	m.hk.errMu.Lock()
	defer m.hk.errMu.Unlock()
	q := &m.hk.failures
	q.mu.Lock()
	changes := q.changes
	q.changes, q.firstIssues = nil, 0
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		q.unwritten -= len(changes)
		q.mu.Unlock()
	}()
	now := time.Now().UTC()
	all, err := status.UpdateFailures(ctx, m.store, func(all map[string]status.Failure) bool {
		changed := false
		for _, change := range changes {
			if change.apply(all) {
				changed = true
			}
		}
		if changed {
			pruneFirstIssues(all, now)
		}
		return changed
	}, func(err error) {
		m.logger().Warn("stored failures are damaged; starting afresh", slog.String("key", status.FailuresKey), slog.Any("err", err))
	})
	if err != nil {
		m.logger().Warn("storing failures for status", slog.String("key", status.FailuresKey), slog.Any("err", err))
	}
	if all != nil {
		m.setFailing(all)
	}
}

// readFailures reads the stored failures into the copy kept in memory
// (for Stats), without counting as a write: the first failure after it is
// still stored before its handshake returns.
func (m *Manager) readFailures(ctx context.Context) {
	m.hk.errMu.Lock()
	defer m.hk.errMu.Unlock()
	all, err := status.UpdateFailures(ctx, m.store, func(map[string]status.Failure) bool { return false }, nil)
	if err != nil && ctx.Err() == nil { // not at a close during the start: a trial's failed start warned of its storage
		m.logger().Warn("reading the failures status keeps", slog.String("key", status.FailuresKey), slog.Any("err", err))
	}
	if all != nil {
		m.setFailing(all)
	}
}

// mayKnowFailure reports whether a failure of key may be known to this
// process: in the stored copy it last read or wrote, or still queued.
func (m *Manager) mayKnowFailure(key string) bool {
	m.stats.failMu.Lock()
	_, known := m.stats.failing[key]
	m.stats.failMu.Unlock()
	if known {
		return true
	}
	q := &m.hk.failures
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unwritten > 0
}

// setFailing replaces the in-memory copy of the stored failures.
func (m *Manager) setFailing(all map[string]status.Failure) {
	m.stats.failMu.Lock()
	m.stats.failing = maps.Clone(all)
	m.stats.failMu.Unlock()
}

// LoadStatusState reads the state "certkeeper status" shows beside the
// certificates: last-seen times by primary name and the last failures by
// storage key (renewals) or status.FailingKey (first issues).
//
// Deprecated: use status.LoadState.
func LoadStatusState(ctx context.Context, st storage.Storage) (seen map[string]time.Time, errs map[string]RenewalError, err error) {
	return status.LoadState(ctx, st)
}

// explainedError is an error as Manager.Explain words it.
type explainedError struct {
	err  error
	text string
}

func (e *explainedError) Error() string { return e.text }
func (e *explainedError) Unwrap() error { return e.err }

// explain returns err worded by m.Explain (err itself when it is not set).
func (m *Manager) explain(err error) error {
	if err == nil || m.Explain == nil {
		return err
	}
	return &explainedError{err: err, text: m.Explain(err)}
}
