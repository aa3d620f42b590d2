package storage

import (
	"context"
	"errors"
	"io/fs"
)

// HealthChecker is an optional interface of a Storage with a check of its
// own of whether this process can use it, better than one Load: filestore
// creates and removes a file in its directory and in each directory
// under it (filestore.Store.Check), which a Load of an absent key would
// not find unwritable. It must be cheap (it is run every few seconds)
// and return when ctx is done where it can. Wrapping storages implement
// it through CheckHealth.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// healthKey is the key CheckHealth loads from a Storage without a
// HealthChecker: one that is never stored, so that its absence is the
// answer.
const healthKey = "state/health-probe"

// CheckHealth reports whether s answers: through its CheckHealth if it is
// a HealthChecker, else by loading a key that is never stored (one round
// trip on Redis or PostgreSQL), which must come back absent. It is a
// wrapping Storage's CheckHealth.
func CheckHealth(ctx context.Context, s Storage) error {
	if hc, ok := s.(HealthChecker); ok {
		return hc.CheckHealth(ctx)
	}
	if _, err := s.Load(ctx, healthKey); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
