package redisstore

import (
	"context"
	"fmt"

	"github.com/certkeeper/certkeeper/storage"
)

// changesChannel follows the prefix in the name of the pub/sub channel on
// which Notify publishes; Stores sharing a prefix share the channel.
const changesChannel = ".changes"

var _ storage.Notifier = (*Store)(nil)

// Notify implements storage.Notifier with one PUBLISH of key on the
// channel PREFIX+".changes" (on a Cluster, Redis forwards it to every
// node).
func (s *Store) Notify(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("redisstore: notify: %w", err)
	}
	if s.Client == nil {
		return errNoClient
	}
	if err := s.Client.Publish(ctx, s.prefix()+changesChannel, key).Err(); err != nil {
		return s.fail(ctx, "notify", key, err)
	}
	return nil
}

// Subscribe implements storage.Notifier with SUBSCRIBE on the channel
// PREFIX+".changes". go-redis reconnects the subscription after an outage
// by itself; notices published meanwhile are lost, which is why the
// Manager also checks storage periodically.
func (s *Store) Subscribe(ctx context.Context) (<-chan string, error) {
	if s.Client == nil {
		return nil, errNoClient
	}
	ps := s.Client.Subscribe(ctx, s.prefix()+changesChannel)
	in := ps.Channel()
	out := make(chan string, 64)
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-in:
				if !ok {
					return
				}
				if storage.ValidateKey(msg.Payload) != nil {
					continue
				}
				select {
				case out <- msg.Payload:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
