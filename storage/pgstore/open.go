package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// config is what a URL describes besides what pgx parses.
type config struct {
	connString string // the URL without certkeeper's own parameters
	redacted   string // scheme://host/db, for errors
	schema     string
	timeout    time.Duration
	lease      time.Duration
}

// schemaName is what the schema parameter may be: a plain lower-case
// identifier, short enough that "SCHEMA.changes" is a NOTIFY channel
// (63 bytes at most).
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// ErrPasswordInURL is wrapped by the error of Open and OpenPassword for a
// URL that holds a password: process lists and configuration files would
// show it.
var ErrPasswordInURL = errors.New("holds a password")

// Open is OpenPassword without a password: as in libpq, it comes from
// PGPASSWORD or the password file PGPASSFILE (default ~/.pgpass), if the
// server asks for one.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	return OpenPassword(ctx, rawURL, "")
}

// OpenPassword returns a Store on the PostgreSQL database that rawURL
// describes (see the package documentation), authenticating with password
// if it is not empty (it then wins over PGPASSWORD and PGPASSFILE).
//
// It connects, and creates or migrates the Store's schema: in one
// transaction, under a transaction-scoped advisory lock, so that nodes
// starting at once migrate one after the other and the later ones find
// the work done. A schema made by a newer certkeeper is refused rather
// than written to. Close the Store to close its connections.
//
// Errors never contain a password; a URL that holds one is refused.
func OpenPassword(ctx context.Context, rawURL, password string) (*Store, error) {
	return OpenWith(ctx, rawURL, Options{Password: password})
}

// OpenPasswordFunc is OpenPassword with the password asked of password
// at every new connection (of the pool, and the LISTEN one of
// Subscribe), rather than once: a password kept in a file is rotated by
// rewriting the file, with no restart. Connections already open stay
// open (PostgreSQL does not end them when a password changes). An error
// of password fails that connection, and is wrapped in the error of the
// operation that needed it.
func OpenPasswordFunc(ctx context.Context, rawURL string, password func(context.Context) (string, error)) (*Store, error) {
	return OpenWith(ctx, rawURL, Options{PasswordFunc: password})
}

// Options are what OpenWith may be given besides the URL.
type Options struct {
	// Password, if not empty, is the password (OpenPassword).
	Password string

	// PasswordFunc, if not nil, is asked for the password at every new
	// connection (OpenPasswordFunc); it wins over Password.
	PasswordFunc func(context.Context) (string, error)

	// StartUnreachable returns the Store when the server cannot be
	// reached yet (a connection refused or timed out, a host name that
	// does not resolve) rather than failing: its schema is then prepared
	// by the first operation that reaches the server, and until one does
	// operations fail, saying why. For a long-running program started
	// before its database (a container beside it), which serves what it
	// holds in memory meanwhile, as it would with a Redis that is down.
	// A server that answers and refuses (a wrong password, no such
	// database, a newer schema) fails OpenWith all the same.
	StartUnreachable bool

	// Existing refuses a schema the URL names (schema=) that does not
	// exist rather than creating it: for a command that only reads
	// (status, an export), where a mistyped schema= would otherwise make a
	// new, empty schema and report "no certificates". The default schema
	// missing is a database nothing was stored in yet, as a directory not
	// made yet is.
	Existing bool

	// Logger becomes the Store's Logger before the schema is prepared,
	// so that what preparing it logs (a table found missing and made
	// anew) goes where the Store's other logs go.
	Logger *slog.Logger
}

// OpenWith is OpenPassword with the options o.
func OpenWith(ctx context.Context, rawURL string, o Options) (*Store, error) {
	return open(ctx, rawURL, o)
}

func open(ctx context.Context, rawURL string, o Options) (*Store, error) {
	password, passwordFunc := o.Password, o.PasswordFunc
	cfg, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(cfg.connString)
	if err != nil {
		// pgx's errors redact passwords, but the URL has none anyway.
		return nil, fmt.Errorf("pgstore: URL %s: %w", cfg.redacted, err)
	}
	cc := pc.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = cfg.timeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "certkeeper"
	}
	if password != "" {
		cc.Password = password
	}
	if passwordFunc != nil {
		pc.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
			return setPassword(ctx, cc, passwordFunc)
		}
	}
	s := &Store{
		password: passwordFunc,
		LeaseTTL: cfg.lease,
		schema:   cfg.schema,
		existing: o.Existing && cfg.schema != DefaultSchema,
		Logger:   o.Logger,
		timeout:  cfg.timeout,
		where:    fmt.Sprintf("PostgreSQL at %s/%s", net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))), cc.Database),
	}
	if strings.HasPrefix(cc.Host, "/") {
		s.where = fmt.Sprintf("PostgreSQL at %s/%s", cc.Host, cc.Database)
	}
	s.transportRisk = transportRisk(&cc.Config, s.where)
	s.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %s: %w", s.where, err)
	}
	if err := s.ready(ctx); err != nil && !(o.StartUnreachable && unreachable(err)) {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// unreachable reports whether err says the server could not be reached at
// all, as opposed to answering with a refusal.
func unreachable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return false
	}
	return errors.As(err, new(*net.OpError)) || errors.As(err, new(*net.DNSError)) || errors.Is(err, context.DeadlineExceeded)
}

// prepareRetry is how often, at most, operations try to prepare the schema
// of a Store opened while its server could not be reached: in between
// they fail at once with the last attempt's error, rather than each wait
// for a connection that times out.
const prepareRetry = time.Second

// ready prepares the schema (migrate) unless that is done.
func (s *Store) ready(ctx context.Context) error {
	if s.prepared.Load() {
		return nil
	}
	s.prepMu.Lock()
	defer s.prepMu.Unlock()
	if s.prepared.Load() {
		return nil
	}
	if s.prepErr != nil && time.Since(s.prepTried) < prepareRetry {
		return s.prepErr
	}
	s.prepTried = time.Now()
	s.prepErr = s.migrate(ctx)
	if s.prepErr == nil {
		s.prepared.Store(true)
	}
	return s.prepErr
}

// setPassword sets cc's password to what password says now.
func setPassword(ctx context.Context, cc *pgx.ConnConfig, password func(context.Context) (string, error)) error {
	p, err := password(ctx)
	if err != nil {
		return fmt.Errorf("pgstore: reading the password: %w", err)
	}
	cc.Password = p
	return nil
}

// CheckURL checks rawURL as OpenPassword would, without connecting: its
// form, certkeeper's parameters, what pgx parses, and that it holds no
// password. It is for checking a configuration before anything starts.
func CheckURL(rawURL string) error {
	cfg, err := parseURL(rawURL)
	if err != nil {
		return err
	}
	if _, err := pgxpool.ParseConfig(cfg.connString); err != nil {
		return fmt.Errorf("pgstore: URL %s: %w", cfg.redacted, err)
	}
	return nil
}

// parseURL checks the URL by hand before pgx sees it, to refuse a
// password, and takes out certkeeper's own parameters.
func parseURL(rawURL string) (*config, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || (scheme != "postgres" && scheme != "postgresql") {
		return nil, errors.New("pgstore: want a URL postgres://[user@]host[:port]/database[?param=value...]")
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	hosts := authority
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		hosts = authority[at+1:]
		if strings.Contains(authority[:at], ":") {
			return nil, fmt.Errorf("pgstore: URL %s://%s %w: remove it and give the password apart from the URL (from a file only its user can read), or in PGPASSWORD or PGPASSFILE, where process lists and configuration files do not show it", scheme, hosts, ErrPasswordInURL)
		}
	}
	tail, fragment, hasFragment := strings.Cut(tail, "#")
	path, rawQuery, _ := strings.Cut(tail, "?")
	cfg := &config{redacted: scheme + "://" + hosts + path, schema: DefaultSchema, timeout: DefaultTimeout}
	if hasFragment || fragment != "" {
		return nil, fmt.Errorf("pgstore: URL %s has a fragment", cfg.redacted)
	}
	if hosts == "" {
		return nil, fmt.Errorf("pgstore: URL %s has no host: name the server, e.g. postgres://certkeeper@db.internal/certkeeper", cfg.redacted)
	}
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fmt.Errorf("pgstore: URL %s: invalid query", cfg.redacted)
	}
	for name, values := range query {
		v := values[len(values)-1]
		switch name {
		case "password":
			return nil, fmt.Errorf("pgstore: URL %s %w parameter: remove it and give the password apart from the URL (from a file only its user can read), or in PGPASSWORD or PGPASSFILE", cfg.redacted, ErrPasswordInURL)
		case "schema":
			if !schemaName.MatchString(v) {
				return nil, fmt.Errorf("pgstore: URL %s: schema %q is not a lower-case identifier of at most 40 characters such as certkeeper", cfg.redacted, v)
			}
			cfg.schema = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("pgstore: URL %s: timeout is not a positive duration such as 5s", cfg.redacted)
			}
			cfg.timeout = d
		case "lease":
			d, err := time.ParseDuration(v)
			if err != nil || d < 300*time.Millisecond {
				return nil, fmt.Errorf("pgstore: URL %s: lease is not a duration of at least 300ms such as 30s", cfg.redacted)
			}
			cfg.lease = d
		default:
			continue // pgx's
		}
		delete(query, name)
	}
	cfg.connString = scheme + "://" + authority + path
	if len(query) > 0 {
		cfg.connString += "?" + query.Encode()
	}
	return cfg, nil
}

// migrations are the steps from one schema version to the next:
// migrations[i] takes version i to i+1. %[1]s is the quoted schema. Steps
// are only ever appended.
var migrations = [][]string{
	{ // 1
		`CREATE TABLE %[1]s."values" (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)`,
		`CREATE TABLE %[1]s.locks (name text COLLATE "C" PRIMARY KEY, token text NOT NULL, expires timestamptz NOT NULL)`,
	},
}

// migrate creates or upgrades the schema (see OpenPassword).
func (s *Store) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*s.timeout)
	defer cancel()
	fail := func(err error) error {
		return fmt.Errorf("pgstore: preparing schema %s on %s: %w", s.schema, s.where, authError(err))
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		// The connection, not the schema: a server that is down or
		// refuses the login.
		return fmt.Errorf("pgstore: connecting to %s: %w", s.where, authError(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Nodes starting together take turns; the lock ends with the
	// transaction.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "certkeeper schema "+s.schema); err != nil {
		return fail(err)
	}
	quoted := pgx.Identifier{s.schema}.Sanitize()
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s.schema).Scan(&exists); err != nil {
		return fail(err)
	}
	// A schema made beforehand by an administrator needs no CREATE
	// privilege on the database.
	if !exists && s.existing {
		return fmt.Errorf("pgstore: %s has no schema %q: is the URL's schema= right? (a certkeeper proxy or server creates it at its first start)", s.where, s.schema)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+quoted); err != nil {
			return fail(fmt.Errorf("%w (create the schema beforehand, or grant CREATE on the database)", err))
		}
	}
	// CREATE TABLE IF NOT EXISTS needs CREATE on the schema even when the
	// table is there: a role granted only the tables' privileges (a
	// read-only one for status, one for reading and writing, the schema
	// made by an administrator) is not asked for it once the schema is
	// prepared.
	var tables bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quoted+".schema_version").Scan(&tables); err != nil {
		return fail(err)
	}
	if !tables {
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+quoted+".schema_version (version int NOT NULL)"); err != nil {
			return fail(fmt.Errorf("%w (prepare the schema once as its owner, or grant CREATE on schema %s)", err, s.schema))
		}
	}
	var version int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM "+quoted+".schema_version").Scan(&version); err != nil {
		return fail(err)
	}
	if version > len(migrations) {
		return fail(fmt.Errorf("schema version %d is newer than this certkeeper knows (%d): upgrade certkeeper", version, len(migrations)))
	}
	if version == len(migrations) {
		// A table dropped by hand would otherwise fail each operation
		// later ("relation does not exist" at the first lock).
		for _, table := range []string{"values", "locks"} {
			var ok bool
			if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", quoted+"."+pgx.Identifier{table}.Sanitize()).Scan(&ok); err != nil {
				return fail(err)
			}
			switch {
			case ok:
			case table == "locks":
				// Leases only: nothing is lost by making it anew.
				if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[0][1], quoted)); err != nil {
					return fail(fmt.Errorf("table %s.locks is missing and cannot be made anew: %w", s.schema, err))
				}
				if err := tx.Commit(ctx); err != nil {
					return fail(err)
				}
				s.logger().Warn("pgstore: table locks was missing; made it anew", "server", s.where, "schema", s.schema)
			default:
				return fail(fmt.Errorf("table %s.%s is missing although the schema is at version %d: restore it from a backup, or drop schema %s so that certkeeper creates it anew (empty: every account, key and certificate was in that table)", s.schema, table, version, s.schema))
			}
		}
		return nil
	}
	for _, step := range migrations[version:] {
		for _, stmt := range step {
			if _, err := tx.Exec(ctx, fmt.Sprintf(stmt, quoted)); err != nil {
				return fail(err)
			}
		}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+quoted+".schema_version"); err != nil {
		return fail(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+quoted+".schema_version (version) VALUES ($1)", len(migrations)); err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil
}
