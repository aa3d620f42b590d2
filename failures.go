package certkeeper

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// RenewalError is the last failed renewal of a certificate, as kept in
// storage for "certkeeper status".
//
// Deprecated: it is a record, not an error; use status.Failure, which
// it is an alias of.
type RenewalError = status.Failure

// noteRenewal records the outcome of a renewal attempt for status: the
// failure (err != nil) or its clearing.
func (m *Manager) noteRenewal(ctx context.Context, key string, names []string, err error, retry time.Time, attempt int) {
	m.hk.errMu.Lock()
	defer m.hk.errMu.Unlock()
	all := map[string]status.Failure{}
	if data, lerr := m.store.Load(ctx, status.FailuresKey); lerr == nil {
		_ = json.Unmarshal(data, &all)
	}
	if err == nil {
		if _, ok := all[key]; !ok {
			return
		}
		delete(all, key)
	} else {
		all[key] = status.Failure{Names: names, Error: err.Error(), At: time.Now().UTC(), RetryAt: retry.UTC(), Attempt: attempt}
	}
	data, merr := json.Marshal(all)
	if merr == nil {
		merr = m.store.Store(ctx, status.FailuresKey, data)
	}
	if merr != nil {
		m.logger().Warn("storing renewal status", slog.Any("err", merr))
	}
}

// LoadStatusState reads the state "certkeeper status" shows beside the
// certificates: last-seen times by primary name and the last renewal
// failure by storage key.
//
// Deprecated: use status.LoadState.
func LoadStatusState(ctx context.Context, st storage.Storage) (seen map[string]time.Time, errs map[string]RenewalError, err error) {
	return status.LoadState(ctx, st)
}
