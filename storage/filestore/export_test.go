package filestore

import (
	"context"
	"time"
)

// LeaseDuration implements storagetest.Abandoner.
func (s *Store) LeaseDuration() time.Duration { return s.leaseTTL() }

// LockAbandoned implements storagetest.Abandoner: it takes the lock as
// Lock does but starts no renewal and returns no unlock, like a holder
// that died.
func (s *Store) LockAbandoned(ctx context.Context, name string) error {
	_, err := s.acquire(ctx, name)
	return err
}
