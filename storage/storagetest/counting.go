package storagetest

import (
	"context"
	"sync/atomic"

	"github.com/certkeeper/certkeeper/storage"
)

// Counting is a Storage that counts the operations on the Storage it
// wraps (Load, Store, Delete, List, Lock and health probes,
// storage.CheckHealth), for tests of what a flood of requests costs.
type Counting struct {
	storage.Storage
	n atomic.Int64
}

// N returns how many operations were made since the start or Reset.
func (c *Counting) N() int64 { return c.n.Load() }

// Reset sets the count to zero.
func (c *Counting) Reset() { c.n.Store(0) }

// Load counts and forwards.
func (c *Counting) Load(ctx context.Context, key string) ([]byte, error) {
	c.n.Add(1)
	return c.Storage.Load(ctx, key)
}

// Store counts and forwards.
func (c *Counting) Store(ctx context.Context, key string, value []byte) error {
	c.n.Add(1)
	return c.Storage.Store(ctx, key, value)
}

// Delete counts and forwards.
func (c *Counting) Delete(ctx context.Context, key string) error {
	c.n.Add(1)
	return c.Storage.Delete(ctx, key)
}

// List counts and forwards.
func (c *Counting) List(ctx context.Context, prefix string) ([]string, error) {
	c.n.Add(1)
	return c.Storage.List(ctx, prefix)
}

// Lock counts and forwards.
func (c *Counting) Lock(ctx context.Context, name string) (func(), error) {
	c.n.Add(1)
	return c.Storage.Lock(ctx, name)
}

// CheckHealth counts and forwards (storage.CheckHealth).
func (c *Counting) CheckHealth(ctx context.Context) error {
	c.n.Add(1)
	return storage.CheckHealth(ctx, c.Storage)
}
