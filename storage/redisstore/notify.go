package redisstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/storage"
)

// changesChannel follows the prefix in the name of the pub/sub channel on
// which Notify publishes every notice; Stores sharing a prefix share the
// channel. The notice of key is also published on the channel of key
// alone, changesChannel + ":" + key, which WatchKeys subscribes to.
const changesChannel = ".changes"

var (
	_ storage.Notifier   = (*Store)(nil)
	_ storage.KeyWatcher = (*Store)(nil)
)

// keyChannel is the pub/sub channel of the notices of key alone.
func (s *Store) keyChannel(key string) string {
	return s.prefix() + changesChannel + ":" + key
}

// Notify implements storage.Notifier with one round trip of two PUBLISH
// of key: on the channel of key alone (PREFIX+".changes:"+key), which the
// nodes that hold key watch (WatchKeys), and on the shared channel
// PREFIX+".changes" for the subscribers of Subscribe (nodes of earlier
// versions during a rolling upgrade). On a Cluster, Redis forwards both to
// every node; each client receives only what it subscribed to.
func (s *Store) Notify(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("redisstore: notify: %w", err)
	}
	_, err := s.Client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Publish(ctx, s.keyChannel(key), key)
		p.Publish(ctx, s.prefix()+changesChannel, key)
		return nil
	})
	if err != nil {
		return s.fail(ctx, "notify", key, err)
	}
	return nil
}

// Subscribe implements storage.Notifier with SUBSCRIBE on the channel
// PREFIX+".changes": every notice, whatever its key. go-redis reconnects
// the subscription after an outage by itself; notices published meanwhile
// are lost, which is why the Manager also checks storage periodically.
// WatchKeys receives only the notices of chosen keys.
func (s *Store) Subscribe(ctx context.Context) (<-chan string, error) {
	ps := s.Client.Subscribe(ctx, s.prefix()+changesChannel)
	out := make(chan string, 64)
	go s.deliver(ctx, ps, out, nil)
	return out, nil
}

// WatchKeys implements storage.KeyWatcher with one pub/sub connection
// subscribed to the channel of each watched key (PREFIX+".changes:"+key):
// Redis sends this client the notices of those keys only, so what a node
// receives grows with what it holds, not with what the cluster holds.
// Watch and Unwatch are applied by a goroutine of the subscription
// (SUBSCRIBE and UNSUBSCRIBE of every key changed since the last, in one
// command each); go-redis keeps the set of channels and subscribes them
// all again when it reconnects after an outage.
func (s *Store) WatchKeys(ctx context.Context) (<-chan string, storage.KeyWatch, error) {
	// The subscription always holds one channel nobody publishes on (the
	// key channel of the empty key), so that it stays in subscribed mode
	// with no key watched.
	idle := s.keyChannel("")
	ps := s.Client.Subscribe(ctx, idle)
	w := &keyWatch{pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			var on, off []string
			for key, watch := range w.take() {
				if watch {
					on = append(on, s.keyChannel(key))
				} else {
					off = append(off, s.keyChannel(key))
				}
			}
			// An error (Redis unreachable) leaves the channels in
			// go-redis's set: they are subscribed again on reconnect.
			if len(on) > 0 {
				_ = ps.Subscribe(ctx, on...)
			}
			if len(off) > 0 {
				_ = ps.Unsubscribe(ctx, off...)
			}
		}
	}()
	out := make(chan string, 64)
	go s.deliver(ctx, ps, out, func(msg *redis.Message) bool {
		return msg.Channel == s.keyChannel(msg.Payload)
	})
	return out, w, nil
}

// deliver sends the key of each message of ps that accept accepts (nil:
// every one) to out until ctx is done, then closes out and ps.
func (s *Store) deliver(ctx context.Context, ps *redis.PubSub, out chan<- string, accept func(*redis.Message) bool) {
	defer close(out)
	defer ps.Close()
	in := ps.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-in:
			if !ok {
				return
			}
			if storage.ValidateKey(msg.Payload) != nil || (accept != nil && !accept(msg)) {
				continue
			}
			select {
			case out <- msg.Payload:
			case <-ctx.Done():
				return
			}
		}
	}
}

// keyWatch is the storage.KeyWatch of a WatchKeys subscription: the
// changes not yet applied, the latest per key.
type keyWatch struct {
	mu      sync.Mutex
	pending map[string]bool // key → watch (true) or unwatch (false)
	wake    chan struct{}   // capacity 1: changes are pending
}

// Watch implements storage.KeyWatch.
func (w *keyWatch) Watch(key string) { w.set(key, true) }

// Unwatch implements storage.KeyWatch.
func (w *keyWatch) Unwatch(key string) { w.set(key, false) }

func (w *keyWatch) set(key string, watch bool) {
	if storage.ValidateKey(key) != nil {
		return // never notified: Notify refuses it
	}
	w.mu.Lock()
	w.pending[key] = watch
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the pending changes and clears them.
func (w *keyWatch) take() map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pending
	w.pending = make(map[string]bool, len(p))
	return p
}
