package certkeeper

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
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
		})
		return
	}
	f := status.Failure{Names: names, Error: err.Error(), At: time.Now().UTC(), RetryAt: retry.UTC(), Attempt: attempt}
	m.updateFailures(ctx, func(all map[string]status.Failure) bool {
		all[key] = f
		return true
	})
}

// noteFirstIssue records the outcome of a first issuance of names for
// status: the failure (err != nil), with the next attempt a handshake may
// make (the failure backoff), or its clearing. Failures that say nothing
// about the name (shutdown, a lock not taken) are not recorded.
func (m *Manager) noteFirstIssue(ctx context.Context, names []string, variant string, err error) {
	key := status.FailingKey(names[0], variant)
	if err == nil {
		m.stats.failMu.Lock()
		_, known := m.stats.failing[key]
		m.stats.failMu.Unlock()
		if !known {
			return // nothing recorded by this process; others clear their own at their next success
		}
		m.updateFailures(ctx, func(all map[string]status.Failure) bool {
			if _, ok := all[key]; !ok {
				return false
			}
			delete(all, key)
			return true
		})
		return
	}
	if m.ctx.Err() != nil || errors.Is(err, errNoLock) || errors.Is(err, context.Canceled) {
		return
	}
	now := time.Now().UTC()
	_, retry := m.lim.failures.Allowed(names[0], now)
	m.updateFailures(ctx, func(all map[string]status.Failure) bool {
		f := status.Failure{Names: names, Error: err.Error(), At: now, RetryAt: retry.UTC(), Attempt: all[key].Attempt + 1, FirstIssue: true}
		all[key] = f
		pruneFirstIssues(all, now)
		return true
	})
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
	})
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

// updateFailures applies change to the failures stored under
// status.FailuresKey and stores them if change reports a change. The
// stored map is the one every node and "certkeeper status" read; the
// copy kept in memory feeds Stats. Updates are serialised within the
// process; across nodes the last writer wins, and a lost entry is
// written again at that name's next failure.
func (m *Manager) updateFailures(ctx context.Context, change func(map[string]status.Failure) bool) {
	m.hk.errMu.Lock()
	defer m.hk.errMu.Unlock()
	all, err := status.UpdateFailures(ctx, m.store, change, func(err error) {
		m.logger().Warn("stored failures are damaged; starting afresh", slog.String("key", status.FailuresKey), slog.Any("err", err))
	})
	if err != nil {
		m.logger().Warn("storing failures for status", slog.String("key", status.FailuresKey), slog.Any("err", err))
	}
	if all != nil {
		m.setFailing(all)
	}
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
