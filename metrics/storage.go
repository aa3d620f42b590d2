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
