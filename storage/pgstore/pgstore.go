// Package pgstore is a storage.Storage kept in PostgreSQL, so that several
// certkeeper nodes share one set of certificates, accounts and locks, on a
// database that an organisation already backs up and replicates.
//
// It uses github.com/jackc/pgx/v5 with a connection pool.
//
// # Layout
//
// Everything lives in one PostgreSQL schema (default "certkeeper", the URL
// parameter schema chooses another), which certkeeper creates and
// migrates itself when it opens the store (see [Open]):
//
//   - values(key text COLLATE "C" PRIMARY KEY, value bytea): one row per
//     key of package storage;
//   - locks(name text COLLATE "C" PRIMARY KEY, token text, expires
//     timestamptz): one row per lock lease;
//   - schema_version(version int): the schema's version.
//
// Keys and lock names are in separate tables, so holding a lock creates no
// key. The "C" collation makes ORDER BY the byte order that List promises.
//
// # Operations
//
//   - Load is one SELECT; an absent key gives an error satisfying
//     errors.Is(err, fs.ErrNotExist).
//   - Store is one INSERT ... ON CONFLICT DO UPDATE, a transaction of its
//     own: readers see the old value or the new one. It is durable when
//     the commit returns, as far as the server's settings make it: with
//     fsync=off or synchronous_commit=off a crash may lose it (certkeeper
//     warns about fsync=off at start).
//   - Delete is one DELETE.
//   - List is a SELECT with starts_with(key, prefix), which has no
//     wildcards to escape, ordered by key.
//   - Lock is a lease: a row inserted, or taken over once its expiry is past
//     (server clock), with a random owner token; a row that holds the token
//     already counts as taken, so Lock, which asks once more at once with
//     the same token when a connection drops before the reply came, gets
//     the lease its lost reply took. A Lock that fails after its statement
//     may have committed deletes the row if it holds its token, best
//     effort, so a lease nobody knows it holds does not keep every node
//     waiting. While it is held a
//     goroutine extends it every third of a lease if it still holds the
//     token; unlock stops the goroutine and deletes the row if it still
//     holds the token, so a holder whose lease expired and was taken over
//     cannot release the new holder's lock. Waiting polls with a backoff
//     from 10 ms to 500 ms.
//   - Notify and Subscribe (storage.Notifier) are NOTIFY and LISTEN on the
//     channel "SCHEMA.changes", so every node swaps in a certificate
//     another node renewed within moments.
//
// # URLs
//
// Open accepts
//
//	postgres://[user@]host[:port][/database][?param=value&...]
//	postgresql://...
//
// with the parameters of libpq URLs that pgx understands (sslmode,
// sslrootcert, connect_timeout, application_name, ...) and three of its
// own: schema (default "certkeeper"), timeout (a Go duration bounding each
// operation, default 5s) and lease (the LeaseTTL of locks, default 30s).
// The URL must not hold a password: it would show in process lists and
// configuration files. The password comes from [OpenPassword], or, as in
// libpq, from PGPASSWORD or the password file PGPASSFILE (default
// ~/.pgpass). Passwords never appear in errors or logs.
//
// # What it does not do
//
// It does not encrypt values (wrap the Store with package
// storage/encrypted), does not configure PostgreSQL, and does not make a
// lease safe against a failover that loses the latest commits: after one,
// two holders may briefly overlap, which is why holders re-check storage
// after Lock.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/internal/lease"
)

// Defaults of a Store's settings.
const (
	// DefaultSchema is the PostgreSQL schema of a Store when the URL names
	// none.
	DefaultSchema = "certkeeper"

	// DefaultLeaseTTL is the lease duration of locks when LeaseTTL is zero.
	DefaultLeaseTTL = 30 * time.Second

	// DefaultTimeout bounds connecting and each operation, unless the URL's
	// timeout parameter says otherwise.
	DefaultTimeout = 5 * time.Second
)

// Lock polling backoff bounds.
const (
	minPoll = 10 * time.Millisecond
	maxPoll = 500 * time.Millisecond
)

// Store is a storage.Storage kept in PostgreSQL. Make one with Open. Its
// exported fields must not change once it is in use; it is safe for
// concurrent use by multiple goroutines and, through PostgreSQL, by
// multiple processes.
type Store struct {
	// LeaseTTL is how long a lock lasts without renewal: a holder that
	// dies delays others by at most this. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration

	// Logger receives what lock holders and subscribers cannot be told by
	// an error: a lease that could not be renewed or released, a lost
	// LISTEN connection. Nil means slog.Default().
	Logger *slog.Logger

	pool     *pgxpool.Pool
	password func(context.Context) (string, error) // OpenPasswordFunc's, asked at each new connection; nil: the config's
	schema   string                                // the PostgreSQL schema, a plain identifier
	existing bool                                  // Options.Existing
	timeout  time.Duration                         // bounds each operation
	where    string                                // "PostgreSQL at host:port/db", for errors

	transportRisk string // see TransportRisk

	// The schema is prepared at open, or by the first operation that
	// reaches the server (Options.StartUnreachable).
	prepared  atomic.Bool
	prepMu    sync.Mutex // guards prepTried and prepErr
	prepTried time.Time  // the last attempt
	prepErr   error      // its error
}

var _ storage.Storage = (*Store)(nil)

// Close closes the Store's connections. Locks still held are not
// released; their leases expire.
func (s *Store) Close() { s.pool.Close() }

func (s *Store) leaseTTL() time.Duration {
	if s.LeaseTTL <= 0 {
		return DefaultLeaseTTL
	}
	return s.LeaseTTL
}

func (s *Store) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// table returns the qualified name of one of the Store's tables.
func (s *Store) table(name string) string {
	return pgx.Identifier{s.schema, name}.Sanitize()
}

// channel is the NOTIFY channel of the Store's schema.
func (s *Store) channel() string { return s.schema + ".changes" }

// op returns ctx bounded by the Store's timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail wraps err from an operation op on key, naming the server.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	err = authError(err)
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("pgstore: %s %q on %s: %w (%w)", op, key, s.where, cerr, err)
	}
	return fmt.Errorf("pgstore: %s %q on %s: %w", op, key, s.where, err)
}

// ErrAuthentication is wrapped by the error of an operation whose
// connection the server refused to authenticate: a wrong password, none
// given where one is wanted (OpenPassword's, PGPASSWORD, PGPASSFILE), or a
// user it does not know.
var ErrAuthentication = errors.New("the server refused the login: wrong or missing password, or unknown user")

// authError wraps ErrAuthentication around err when it is PostgreSQL's
// refusal of the login (SQLSTATE class 28), and drops pgx's note of a
// refused TLS attempt (withoutTLSRefusal).
func authError(err error) error {
	err = withoutTLSRefusal(err)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Code, "28") && !errors.Is(err, ErrAuthentication) {
		return fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	return err
}

// withoutTLSRefusal returns a failed connection's error without the
// attempt the server refused over TLS, and without an attempt that failed
// as an earlier one did, when an attempt without TLS followed and failed
// too (sslmode=prefer, pgx's default, against a
// server without TLS): that attempt holds the server's answer, and pgx's
// "tls error: server refused TLS connection" before it read as the cause
// of every failure (trial 20). The result still wraps err.
func withoutTLSRefusal(err error) error {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) || ce.Config == nil {
		return err
	}
	joined, ok := ce.Unwrap().(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	attempts := joined.Unwrap()
	var kept []string
	for _, a := range attempts {
		// The attempt without TLS that failed as the one with TLS did
		// (a connection refused twice) is said once.
		if msg := a.Error(); !strings.Contains(msg, "tls error: server refused TLS connection") && !slices.Contains(kept, msg) {
			kept = append(kept, msg)
		}
	}
	if len(kept) == 0 || len(kept) == len(attempts) {
		return err
	}
	return &connectError{
		msg: fmt.Sprintf("failed to connect to `user=%s database=%s`: %s", ce.Config.User, ce.Config.Database, strings.Join(kept, "; ")),
		err: err,
	}
}

// connectError is a connection's error with another text.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }

// Load implements storage.Storage with one SELECT.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("pgstore: load: %w", err)
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	var v []byte
	err := s.pool.QueryRow(octx, "SELECT value FROM "+s.table("values")+" WHERE key = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("pgstore: load %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, s.fail(octx, "load", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Store implements storage.Storage with one upsert, atomic and durable
// when it commits.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("pgstore: store: %w", err)
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	if value == nil {
		value = []byte{} // NOT NULL
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	_, err := s.pool.Exec(octx, "INSERT INTO "+s.table("values")+" (key, value) VALUES ($1, $2)"+
		" ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", key, value)
	if err != nil {
		return s.fail(octx, "store", key, err)
	}
	return nil
}

// Delete implements storage.Storage with one DELETE.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("pgstore: delete: %w", err)
	}
	if err := s.ready(ctx); err != nil {
		return err
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.pool.Exec(octx, "DELETE FROM "+s.table("values")+" WHERE key = $1", key); err != nil {
		return s.fail(octx, "delete", key, err)
	}
	return nil
}

// List implements storage.Storage with starts_with, which takes the
// prefix literally (LIKE would need its wildcards escaped); key >= prefix
// lets the primary key's index narrow the scan.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("pgstore: list: %w", err)
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	rows, err := s.pool.Query(octx, "SELECT key FROM "+s.table("values")+
		" WHERE key >= $1 AND starts_with(key, $1) ORDER BY key", prefix)
	if err != nil {
		return nil, s.fail(octx, "list", prefix, err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail(octx, "list", prefix, err)
	}
	if keys == nil {
		keys = []string{}
	}
	return keys, nil
}

// Lock implements storage.Storage with a renewed lease (see the package
// documentation). It fails at once, rather than waiting, if PostgreSQL
// cannot be reached. unlock waits for the renewal goroutine to end and for
// the release, each bounded by the Store's timeout, so it returns promptly
// even when PostgreSQL is unreachable; a lease it could not release
// expires by itself.
func (s *Store) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if err := storage.ValidateKey(name); err != nil {
		return nil, fmt.Errorf("pgstore: lock: %w", err)
	}
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	h, err := s.acquire(ctx, name)
	if err != nil {
		return nil, err
	}
	return lease.Hold(h), nil
}

// acquire waits until it holds the lease of the lock called name, and
// returns it with the operations that keep and release it.
func (s *Store) acquire(ctx context.Context, name string) (lease.Held, error) {
	token, ttl := lease.NewToken(), s.leaseTTL()
	opTimeout := min(max(ttl/3, time.Second), max(s.timeout, time.Second))
	var maybeTaken bool // a try failed after its statement may have committed
	err := lease.Acquire(ctx, "pgstore", name, minPoll, maxPoll, func(ctx context.Context) (bool, error) {
		ok, err := s.take(ctx, name, token, ttl)
		if err != nil && mayHaveRun(err) {
			// The statement may have taken the lease and its reply been
			// lost with its connection: ask once more, at once, with the
			// same token, which finds the lease ours if it did.
			maybeTaken = true
			ok, err = s.take(ctx, name, token, ttl)
		}
		if err != nil {
			maybeTaken = maybeTaken || mayHaveRun(err)
			return false, s.fail(ctx, "lock", name, err)
		}
		return ok, nil
	})
	if err != nil {
		if maybeTaken {
			// A lease taken by a statement whose reply never came would
			// hold everyone off (this Store too: its next Lock has a new
			// token) until it expires: give it up, if it is ours. Best
			// effort: a statement the server runs only after this DELETE
			// (it was still queued) leaves a lease that expires by itself.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
			if rerr := s.release(rctx, name, token); rerr != nil {
				s.logger().Warn("pgstore: releasing the lease of a failed lock failed; it expires by itself",
					"lock", name, "server", s.where, "lease", ttl, "err", rerr)
			}
			cancel()
		}
		return lease.Held{}, err
	}
	renew := "UPDATE " + s.table("locks") + " SET expires = clock_timestamp() + $3 * interval '1 millisecond'" +
		" WHERE name = $1 AND token = $2"
	return lease.Held{
		Backend: "pgstore", Name: name, Server: s.where, TTL: ttl, Logger: s.logger(),
		// A third of the lease, at least a second, at most the Store's
		// timeout.
		OpTimeout: opTimeout,
		Renew: func(ctx context.Context) (bool, error) {
			tag, err := s.pool.Exec(ctx, renew, name, token, ttl.Milliseconds())
			if err != nil {
				return true, err // maybe still held: tried again at the next tick
			}
			return tag.RowsAffected() != 0, nil
		},
		Release: func(ctx context.Context) error { return s.release(ctx, name, token) },
	}, nil
}

// take makes one attempt at the lease of the lock called name for the
// owner token, within the Store's timeout, and reports whether it holds
// the lease. The row is inserted, or taken over if its lease has expired,
// or kept (and extended) if it holds token already: a statement whose
// reply was lost may have taken it, and a retry with the same token must
// not wait for its own lease to expire. In each of these cases RETURNING
// gives a row. The server's clock decides, so nodes' clocks need not
// agree.
func (s *Store) take(ctx context.Context, name, token string, ttl time.Duration) (bool, error) {
	octx, cancel := s.op(ctx)
	defer cancel()
	var one int
	err := s.pool.QueryRow(octx, "INSERT INTO "+s.table("locks")+" AS l (name, token, expires)"+
		" VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')"+
		" ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, expires = EXCLUDED.expires"+
		" WHERE l.expires < clock_timestamp() OR l.token = EXCLUDED.token RETURNING 1",
		name, token, ttl.Milliseconds()).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	default:
		return false, err
	}
}

// mayHaveRun reports whether a statement that failed with err may have
// run and committed on the server all the same, its reply lost. It has
// not when pgx says it is safe to retry (nothing was sent) or when no
// connection could be made; releasing after those would only add another
// wait for an unreachable server to a failed Lock.
func mayHaveRun(err error) bool {
	var ce *pgconn.ConnectError
	return !pgconn.SafeToRetry(err) && !errors.As(err, &ce)
}

// release deletes the lease of the lock called name if it still holds
// the owner token.
func (s *Store) release(ctx context.Context, name, token string) error {
	_, err := s.pool.Exec(ctx, "DELETE FROM "+s.table("locks")+" WHERE name = $1 AND token = $2", name, token)
	return err
}
