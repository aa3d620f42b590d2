package localca

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/certkeeper/certkeeper/storage"
)

// memStorage is an in-process storage.Storage for unit tests: a map, a
// mutex, and locks that exclude other holders in this process. It counts
// Stores per key so tests can tell how often a value was written.
type memStorage struct {
	mu     sync.Mutex               // guards the fields below
	values map[string][]byte        // key → value
	locks  map[string]chan struct{} // held lock → closed on unlock
	stores map[string]int           // key → number of Stores
}

func newMemStorage() *memStorage {
	return &memStorage{
		values: make(map[string][]byte),
		locks:  make(map[string]chan struct{}),
		stores: make(map[string]int),
	}
}

func (s *memStorage) Load(ctx context.Context, key string) ([]byte, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[key]
	if !ok {
		return nil, fmt.Errorf("loading %s: %w", key, fs.ErrNotExist)
	}
	return slices.Clone(v), nil
}

func (s *memStorage) Store(ctx context.Context, key string, value []byte) error {
	if err := storage.ValidateKey(key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values[key] = slices.Clone(value)
	s.stores[key]++
	return nil
}

func (s *memStorage) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.values, key)
	return nil
}

func (s *memStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.values {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (s *memStorage) Lock(ctx context.Context, name string) (func(), error) {
	for {
		s.mu.Lock()
		held, ok := s.locks[name]
		if !ok {
			ch := make(chan struct{})
			s.locks[name] = ch
			s.mu.Unlock()
			var once sync.Once
			return func() {
				once.Do(func() {
					s.mu.Lock()
					delete(s.locks, name)
					s.mu.Unlock()
					close(ch)
				})
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *memStorage) storeCount(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stores[key]
}

var _ storage.Storage = (*memStorage)(nil)
