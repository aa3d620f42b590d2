// Package redisstore is a storage.Storage kept in Redis, so that several
// certkeeper nodes share one set of certificates, accounts and locks:
// whichever node orders a certificate, every node serves it, and a lock
// taken on one node excludes all the others.
//
// It uses github.com/redis/go-redis/v9 and works on a standalone server,
// on a Sentinel-managed master and on a Redis Cluster, whichever the
// redis.UniversalClient given to New talks to, or the URL given to Open
// describes.
//
// # Layout
//
// A key K of package storage is the Redis string PREFIX+K, holding the
// value as it is. The prefix (default "certkeeper:") lets one Redis serve
// several installations, or other applications. A lock called N is the
// Redis string PREFIX+".locks/"+N, holding the random token of its owner
// with an expiry of one lease: no key can start with ".locks/" (no key
// segment starts with "."), so locks are never keys and List never
// returns them.
//
// # Operations
//
//   - Load is one GET; an absent key gives an error satisfying
//     errors.Is(err, fs.ErrNotExist).
//   - Store is one SET of the whole value, so readers see the old value or
//     the new one, never a mix. It is durable as far as the server's
//     persistence settings make it: a deployment that must not lose a
//     certificate on a Redis restart needs "appendonly yes" with
//     "appendfsync everysec" (at most a second lost) or "always".
//   - Delete is one DEL.
//   - List is SCAN with a MATCH pattern on the prefix, glob characters
//     escaped, never KEYS, so a large Redis is not blocked; on a Cluster it
//     scans every master. The result is sorted.
//   - Lock is a lease: SET NX PX with a random owner token, in a script
//     that also counts the lease as taken when it already holds this
//     owner's token (a SET whose reply was lost after the client's read
//     timeout took it; go-redis's retry must not wait it out), and that a
//     failed Lock releases if it is its own. While it is
//     held, a goroutine renews it every third of a lease with a script that
//     extends the lease only if it still holds the owner's token; unlock
//     stops that goroutine, waits for it, and deletes the lease with a
//     script that compares the token first, so a holder whose lease
//     expired and was taken over cannot release the new holder's lock.
//     Waiting for a lock polls with a backoff from 10 ms to 500 ms.
//
// # URLs
//
// Open accepts:
//
//	redis://[user:password@]host[:port][/db][?prefix=P]
//	rediss://...                                    the same over TLS
//	redis+cluster://[user:password@]host:port,host:port,...[/][?prefix=P]
//	rediss+cluster://...                            a Cluster over TLS
//	redis+sentinel://[user:password@]host:port,host:port,.../master[/db][?prefix=P]
//	rediss+sentinel://...                           Sentinel, TLS to Redis and Sentinels
//
// For example "redis://127.0.0.1:6379/0?prefix=prod:",
// "rediss://certkeeper:s3cret@redis.internal:6380/2",
// "redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000/" or
// "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0". The port
// defaults to 6379 (26379 for Sentinels). A Cluster is given seed nodes: it
// discovers the others, and has only database 0. The user information
// authenticates to Redis; the query parameters sentinel_user and
// sentinel_password authenticate to Sentinels that need it. The query
// parameter timeout (a Go duration, default 2s) bounds dialling and every
// read and write, so an unreachable Redis fails an operation within a few
// seconds, with an error naming Redis and its address, instead of hanging.
// The query parameter lease (a Go duration, default 30s) is the LeaseTTL
// of locks: the longest a node that dies holding a lock delays the others.
// A user name, password or parameter holding "/", "?", "#", "@" or "%" is
// percent-encoded ("p@ss/1" is "p%40ss%2F1"); a URL with an "@" after its
// first "/", "?" or "#" is refused rather than guessed at. Passwords never
// appear in errors or logs, encoded or not: URLs are shown without user
// information, query or fragment.
//
// # What it does not do
//
// It does not encrypt values (a Redis dump holds private keys as they were
// stored, unless the Store is wrapped by package storage/encrypted), does not configure Redis persistence or replication, and does
// not make a lease safe against a Redis failover that loses the lease key:
// after a failover two holders may briefly overlap, which is why holders
// re-check storage after Lock. It offers no Redlock over several
// independent servers.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/internal/lease"
)

// Defaults of a Store's fields.
const (
	// DefaultPrefix is the prefix of every Redis key a Store writes when
	// Prefix is empty.
	DefaultPrefix = "certkeeper:"

	// DefaultLeaseTTL is the lease duration of locks when LeaseTTL is zero.
	DefaultLeaseTTL = 30 * time.Second
)

// lockNamespace follows the prefix in the Redis keys of locks. No storage
// key can start with it, since no key segment starts with ".".
const lockNamespace = ".locks/"

// Lock polling backoff bounds.
const (
	minPoll = 10 * time.Millisecond
	maxPoll = 500 * time.Millisecond
)

// Store is a storage.Storage kept in Redis. Its fields must not change
// once it is in use; it is safe for concurrent use by multiple goroutines
// and, through Redis, by multiple processes.
type Store struct {
	// Client talks to Redis: a *redis.Client (standalone or Sentinel) or
	// a *redis.ClusterClient.
	Client redis.UniversalClient

	// Prefix is put before every key and lock name; empty means
	// DefaultPrefix. Stores that share a Redis and a prefix share their
	// keys and locks.
	Prefix string

	// LeaseTTL is how long a lock lasts without renewal: a holder that
	// dies delays others by at most this. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration

	// Logger receives what lock holders cannot be told by an error: a
	// lease that could not be renewed or released. Nil means
	// slog.Default().
	Logger *slog.Logger

	// where names the server(s) in errors, without credentials; empty
	// means derived from Client.
	where string
}

var _ storage.Storage = (*Store)(nil)

// New returns a Store on client with the given key prefix (empty means
// DefaultPrefix). The caller keeps ownership of client; Close closes it.
func New(client redis.UniversalClient, prefix string) *Store {
	return &Store{Client: client, Prefix: prefix}
}

// Close closes the Store's Client. Locks still held are not released;
// their leases expire.
func (s *Store) Close() error {
	if s.Client == nil {
		return nil
	}
	return s.Client.Close()
}

// errNoClient is every operation's error on a Store without a Client
// (its zero value), rather than a nil pointer's panic.
var errNoClient = errors.New("redisstore: Store.Client is nil: make the Store with redisstore.Open(URL) or redisstore.New(client, prefix)")

func (s *Store) prefix() string {
	if s.Prefix == "" {
		return DefaultPrefix
	}
	return s.Prefix
}

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

// server names the Redis the Store talks to, for errors: "Redis at
// 127.0.0.1:6379", "Redis Cluster at a:7000,b:7000". It never includes
// credentials.
func (s *Store) server() string {
	if s.where != "" {
		return s.where
	}
	return describe(s.Client)
}

func describe(c redis.UniversalClient) string {
	switch c := c.(type) {
	case *redis.Client:
		return "Redis at " + c.Options().Addr
	case *redis.ClusterClient:
		return "Redis Cluster at " + strings.Join(c.Options().Addrs, ",")
	default:
		return fmt.Sprintf("Redis (%T)", c)
	}
}

// fail wraps err from an operation op on key, naming Redis. A context
// error is kept visible to errors.Is even when go-redis reports it as a
// network error.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	err = authError(err)
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("redisstore: %s %q on %s: %w (%w)", op, key, s.server(), cerr, err)
	}
	return fmt.Errorf("redisstore: %s %q on %s: %w", op, key, s.server(), err)
}

// ErrAuthentication is wrapped by the error of an operation the server
// refused for want of a valid login: no password where the server wants
// one (NOAUTH), a wrong password or user (WRONGPASS), or a password for a
// server that has none.
var ErrAuthentication = errors.New("the Redis server refused the login: give the password it wants in the URL " +
	"(redis://:PASSWORD@HOST:PORT/DB, or redis://USER:PASSWORD@… for an ACL user), or none if it has none")

// authError wraps ErrAuthentication around err when it is Redis's refusal
// of the login.
func authError(err error) error {
	var re redis.Error
	if !errors.As(err, &re) || errors.Is(err, ErrAuthentication) {
		return err
	}
	msg := re.Error()
	if strings.HasPrefix(msg, "NOAUTH ") || strings.HasPrefix(msg, "WRONGPASS ") || strings.Contains(msg, "called without any password configured") {
		return fmt.Errorf("%w: %w", ErrAuthentication, err)
	}
	return err
}

// Load implements storage.Storage with one GET.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("redisstore: load: %w", err)
	}
	if s.Client == nil {
		return nil, errNoClient
	}
	v, err := s.Client.Get(ctx, s.prefix()+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: load %q: %w", key, fs.ErrNotExist)
	}
	if err != nil {
		return nil, s.fail(ctx, "load", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Store implements storage.Storage with one SET, which Redis applies
// atomically.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("redisstore: store: %w", err)
	}
	if s.Client == nil {
		return errNoClient
	}
	if err := s.Client.Set(ctx, s.prefix()+key, value, 0).Err(); err != nil {
		return s.fail(ctx, "store", key, err)
	}
	return nil
}

// Delete implements storage.Storage with one DEL.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := storage.ValidateKey(key); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	if s.Client == nil {
		return errNoClient
	}
	if err := s.Client.Del(ctx, s.prefix()+key).Err(); err != nil {
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}

// scanCount is the COUNT hint of each SCAN call.
const scanCount = 500

// List implements storage.Storage with SCAN MATCH, on every master of a
// Cluster.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := storage.ValidatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("redisstore: list: %w", err)
	}
	if s.Client == nil {
		return nil, errNoClient
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: list %q: %w", prefix, err)
	}
	full := s.prefix() + prefix
	pattern := globEscape(full) + "*"
	var (
		mu   sync.Mutex // guards keys: ForEachMaster runs fn concurrently
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var found []string
		var cursor uint64
		for {
			batch, next, err := c.Scan(ctx, cursor, pattern, scanCount).Result()
			if err != nil {
				return err
			}
			for _, k := range batch {
				rest, ok := strings.CutPrefix(k, s.prefix())
				// Locks and anything that is not a key of ours are
				// skipped; the prefix check guards against a MATCH
				// that is looser than intended.
				if !ok || !strings.HasPrefix(k, full) || storage.ValidateKey(rest) != nil {
					continue
				}
				found = append(found, rest)
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
		mu.Lock()
		keys = append(keys, found...)
		mu.Unlock()
		return nil
	}
	var err error
	if cc, ok := s.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx, s.Client)
	}
	if err != nil {
		return nil, s.fail(ctx, "list", prefix, err)
	}
	// SCAN may return a key more than once.
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// globEscape escapes the characters that are special in Redis glob
// patterns, so that the pattern matches s literally.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\', '^', '-':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Scripts that act on a lease only if it holds the owner's token
// (ARGV[1]). They are immutable; go-redis runs them with EVALSHA and falls
// back to EVAL.
var (
	// acquireScript takes the lease if it is free, and reports it taken
	// if this owner holds it already: a SET whose reply was lost (after
	// the client's read timeout) may have taken it, and go-redis's retry,
	// or the next poll, must not wait for this owner's own lease to
	// expire.
	acquireScript = redis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
	return 1
end
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("PEXPIRE", KEYS[1], ARGV[2])
	return 1
end
return 0`)
	renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0`)
	releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)
)

// Lock implements storage.Storage with a renewed lease (see the package
// documentation). It fails at once, rather than waiting, if Redis cannot
// be reached. unlock waits for the renewal goroutine to end and for the
// release, each bounded by a third of the lease (at least a second, at most
// five), so it returns promptly even when Redis is unreachable; a lease it
// could not release expires by itself.
func (s *Store) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if err := storage.ValidateKey(name); err != nil {
		return nil, fmt.Errorf("redisstore: lock: %w", err)
	}
	if s.Client == nil {
		return nil, errNoClient
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
	key, token, ttl := s.prefix()+lockNamespace+name, lease.NewToken(), s.leaseTTL()
	err := lease.Acquire(ctx, "redisstore", name, minPoll, maxPoll, func(ctx context.Context) (bool, error) {
		n, err := acquireScript.Run(ctx, s.Client, []string{key}, token, ttl.Milliseconds()).Int()
		if err != nil {
			return false, s.fail(ctx, "lock", name, err)
		}
		return n == 1, nil
	})
	if err != nil {
		// A lease taken by a command whose reply never came would hold
		// others off for a whole lease: give it up, if it is ours.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), min(max(ttl/3, time.Second), 5*time.Second))
		_ = releaseScript.Run(rctx, s.Client, []string{key}, token).Err()
		cancel()
		return lease.Held{}, err
	}
	return lease.Held{
		Backend: "redisstore", Name: name, Server: s.server(), TTL: ttl, Logger: s.logger(),
		// A third of the lease, at least a second, at most five.
		OpTimeout: min(max(ttl/3, time.Second), 5*time.Second),
		Renew: func(ctx context.Context) (bool, error) {
			n, err := renewScript.Run(ctx, s.Client, []string{key}, token, ttl.Milliseconds()).Int()
			return n != 0, err
		},
		Release: func(ctx context.Context) error {
			return releaseScript.Run(ctx, s.Client, []string{key}, token).Err()
		},
	}, nil
}
