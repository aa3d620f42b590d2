package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/certkeeper/certkeeper/storage"
)

var _ storage.Notifier = (*Store)(nil)

// Notify implements storage.Notifier with pg_notify on the channel
// "SCHEMA.changes"; Stores sharing a schema share the channel.
func (s *Store) Notify(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("pgstore: notify: %w", err)
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.pool.Exec(octx, "SELECT pg_notify($1, $2)", s.channel(), key); err != nil {
		return s.fail(octx, "notify", key, err)
	}
	return nil
}

// Subscribe implements storage.Notifier with LISTEN on a connection of its
// own, outside the pool. The first connection is made before Subscribe
// returns, so a notice sent after it returns is delivered; after an outage
// it reconnects by itself (every 100 ms to 5 s), and notices sent
// meanwhile are lost.
func (s *Store) Subscribe(ctx context.Context) (<-chan string, error) {
	conn, err := s.listen(ctx)
	if err != nil {
		return nil, err
	}
	out := make(chan string, 64)
	go s.follow(ctx, conn, out)
	return out, nil
}

// listen connects and LISTENs.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	octx, cancel := s.op(ctx)
	defer cancel()
	cc := s.pool.Config().ConnConfig.Copy()
	if s.password != nil {
		if err := setPassword(octx, cc, s.password); err != nil {
			return nil, s.fail(octx, "subscribe", s.channel(), err)
		}
	}
	conn, err := pgx.ConnectConfig(octx, cc)
	if err != nil {
		return nil, s.fail(octx, "subscribe", s.channel(), err)
	}
	if _, err := conn.Exec(octx, "LISTEN "+pgx.Identifier{s.channel()}.Sanitize()); err != nil {
		conn.Close(context.Background())
		return nil, s.fail(octx, "subscribe", s.channel(), err)
	}
	return conn, nil
}

// follow delivers the notices of conn to out until ctx is done,
// reconnecting after failures, and closes out.
func (s *Store) follow(ctx context.Context, conn *pgx.Conn, out chan<- string) {
	defer close(out)
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	wait := 100 * time.Millisecond
	var lost time.Time // when notices were interrupted; zero while they flow
	for {
		if conn == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			c, err := s.listen(ctx)
			if err != nil {
				wait = min(2*wait, 5*time.Second)
				continue
			}
			conn, wait = c, 100*time.Millisecond
			// Say the warning is over: an operator who saw it
			// otherwise cannot tell whether this node recovered.
			s.logger().Info("pgstore: change notices resumed", "server", s.where,
				"after", time.Since(lost).Round(time.Millisecond))
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.logger().Warn("pgstore: change notices interrupted; reconnecting",
				"server", s.where, "err", err)
			conn.Close(context.Background())
			conn, lost = nil, time.Now()
			continue
		}
		if storage.ValidateKey(n.Payload) != nil {
			continue
		}
		select {
		case out <- n.Payload:
		case <-ctx.Done():
			return
		}
	}
}
