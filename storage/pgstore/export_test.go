package pgstore

import (
	"fmt"

	"context"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
func (s *Store) Server() string { return s.where }

// Exec runs a statement on the Store's pool, for tests that look under
// the hood; %s in sql is the quoted schema.
func (s *Store) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := s.pool.Exec(ctx, fmt.Sprintf(sql, pgxIdent(s.schema)), args...)
	return err
}

// ParsedURL is what parseURL makes of a URL, for tests.
type ParsedURL struct {
	ConnString, Schema string
	Timeout, Lease     time.Duration
}

// ParseURL exposes parseURL.
func ParseURL(raw string) (*ParsedURL, error) {
	c, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	return &ParsedURL{ConnString: c.connString, Schema: c.schema, Timeout: c.timeout, Lease: c.lease}, nil
}

func pgxIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// TransportRiskOf is transportRisk of the configuration pgx parses from
// url.
func TransportRiskOf(url string) (string, error) {
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		return "", err
	}
	return transportRisk(cc, "PostgreSQL"), nil
}

// Take is one attempt of Lock at the lease of name for the owner token,
// without renewal, for tests of the statement itself.
func (s *Store) Take(ctx context.Context, name, token string) (bool, error) {
	return s.take(ctx, name, token, s.leaseTTL())
}
