package redisstore

import (
	"context"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// LeaseDuration implements storagetest.Abandoner.
func (s *Store) LeaseDuration() time.Duration { return s.leaseTTL() }

// LockAbandoned implements storagetest.Abandoner: it takes the lock as
// Lock does but starts no renewal and returns no unlock, like a holder
// that died.
func (s *Store) LockAbandoned(ctx context.Context, name string) error {
	if err := storage.ValidateKey(name); err != nil {
		return err
	}
	_, err := s.acquire(ctx, name)
	return err
}

// Server is the description of the server that errors name.
func (s *Store) Server() string { return s.server() }

// ParsedURL is what Open makes of a URL, for tests.
type ParsedURL struct {
	Mode, User, Password, Master, Prefix string
	TLS                                  bool
	Addrs                                []string
	DB                                   int
	Timeout, Lease                       time.Duration
	SentinelUser, SentinelPassword       string
}

// ParseURL exposes parseURL.
func ParseURL(raw string) (*ParsedURL, error) {
	c, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	return &ParsedURL{
		Mode: c.mode, User: c.user, Password: c.password, Master: c.master, Prefix: c.prefix,
		TLS: c.tls, Addrs: c.addrs, DB: c.db, Timeout: c.timeout, Lease: c.lease,
		SentinelUser: c.sentinelUser, SentinelPassword: c.sentinelPassword,
	}, nil
}

// GlobEscape exposes globEscape.
var GlobEscape = globEscape

// ErrNoClient is errNoClient, for tests.
var ErrNoClient = errNoClient
