package metrics

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Storage returns s with every operation timed into
// certkeeper_storage_operation_duration_seconds. Give the wrapped storage
// to the Manager.
func (x *Metrics) Storage(s storage.Storage) storage.Storage {
	return &timedStorage{s: s, x: x}
}

// timedStorage times the operations of the storage it wraps.
type timedStorage struct {
	s storage.Storage
	x *Metrics
}

func (t *timedStorage) observe(op string, start time.Time, err error) {
	result := "ok"
	switch {
	case errors.Is(err, fs.ErrNotExist):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	t.x.storageOps.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

// Load times s.Load.
func (t *timedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	v, err := t.s.Load(ctx, key)
	t.observe("load", start, err)
	return v, err
}

// Store times s.Store.
func (t *timedStorage) Store(ctx context.Context, key string, value []byte) error {
	start := time.Now()
	err := t.s.Store(ctx, key, value)
	t.observe("store", start, err)
	return err
}

// Delete times s.Delete.
func (t *timedStorage) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := t.s.Delete(ctx, key)
	t.observe("delete", start, err)
	return err
}

// List times s.List.
func (t *timedStorage) List(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	v, err := t.s.List(ctx, prefix)
	t.observe("list", start, err)
	return v, err
}

// Lock times how long taking the lock took (not how long it was held).
func (t *timedStorage) Lock(ctx context.Context, name string) (func(), error) {
	start := time.Now()
	unlock, err := t.s.Lock(ctx, name)
	t.observe("lock", start, err)
	return unlock, err
}

// SweepLocks passes the Manager's housekeeping on to storages that can
// remove dead holders' leases (filestore); for others it does nothing.
func (t *timedStorage) SweepLocks(ctx context.Context) (int, error) {
	if s, ok := t.s.(interface {
		SweepLocks(ctx context.Context) (int, error)
	}); ok {
		return s.SweepLocks(ctx)
	}
	return 0, nil
}

// StoreVolatile times s.StoreVolatile (as a store) where the wrapped
// storage has it (filestore: challenge answers without fsyncs), else
// s.Store.
func (t *timedStorage) StoreVolatile(ctx context.Context, key string, value []byte) error {
	v, ok := t.s.(storage.VolatileStorer)
	if !ok {
		return t.Store(ctx, key, value)
	}
	start := time.Now()
	err := v.StoreVolatile(ctx, key, value)
	t.observe("store", start, err)
	return err
}

// Notify passes a change notice on to storages that send them (Redis,
// PostgreSQL): without it a cluster node with metrics on would tell the
// other nodes nothing. For others it does nothing.
func (t *timedStorage) Notify(ctx context.Context, key string) error {
	return storage.NotifyVia(ctx, t.s, key)
}

// Subscribe follows the wrapped storage's change notices; for a storage
// without them the channel stays silent until ctx is done, and the
// Manager relies on its periodic check.
func (t *timedStorage) Subscribe(ctx context.Context) (<-chan string, error) {
	return storage.SubscribeVia(ctx, t.s)
}

// CheckHealth passes a health check on to the wrapped storage
// (storage.CheckHealth), untimed: it is not an operation of the Manager's.
func (t *timedStorage) CheckHealth(ctx context.Context) error {
	return storage.CheckHealth(ctx, t.s)
}
