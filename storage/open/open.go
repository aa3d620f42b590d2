// Package open opens a storage.Storage from the string a user gives: a
// directory, or a redis://, rediss://, redis+cluster://, redis+sentinel://
// or postgres:// URL (docs/storage.md), with private keys sealed at rest
// when a key file is given.
//
// It exists so that a Go program configured the way the certkeeper
// command is (one --storage string, a key file, a password file) opens
// the same storage with the same checks, rather than choosing a backend
// package and repeating them: a key file that cannot open what storage
// holds, sealed values without a key file, or a key file for a storage
// whose private keys are all in clear fail when the storage is opened, not
// at the first handshake; a server whose settings may lose what it stores
// (Redis without persistence, say) gets a warning in the log, unless the
// caller is short-lived (Options.SkipDurability).
//
// It does not pick a default directory (certkeeper.DefaultStorageDir does),
// create the storage's schema beyond what each backend does on open, or
// migrate between storages (package storage/archive does).
package open

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/pgstore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// Options says how to open a storage. The zero value opens it as it is,
// without encryption at rest.
type Options struct {
	// KeyFile, if set, is a file of storage keys (encrypted.ReadKeyFile):
	// private keys are sealed at rest with its first key.
	KeyFile string

	// PasswordFile, if set, holds the password of a postgres:// URL
	// (never in the URL itself); it must not be readable by group or
	// others. Empty means pgx's PGPASSWORD or PGPASSFILE.
	PasswordFile string

	// LeaseTTL, if not zero, is the lease of the storage's locks; a URL's
	// lease parameter wins.
	LeaseTTL time.Duration

	// AllowClear opens, with KeyFile, a storage whose private keys are all
	// in clear, rather than refusing it (errors.Is(err,
	// encrypted.ErrNotSealed)): for a rekey that seals them.
	AllowClear bool

	// SkipDurability leaves out the check of the server's settings at
	// open, and its warnings (a Redis keeping its data in memory only, a
	// server that cannot be reached): for a short-lived program, such as
	// a one-off command that reads or writes once, whose own errors say
	// when the server cannot be reached. The long-running program on the
	// same storage (a proxy, a server) is the one to warn.
	SkipDurability bool

	// MustReach, with the durability check, makes a server that cannot be
	// reached an error rather than a warning: for a one-off command that
	// writes and whose durability warnings matter (a migration to the
	// storage a cluster will run on), where "new names and renewals wait
	// for it" does not apply.
	MustReach bool

	// Existing refuses a PostgreSQL schema that does not exist rather
	// than creating it (pgstore.Options.Existing): for a command that
	// only reads, where a mistyped name must not read as an empty
	// storage. (A directory that does not exist is the caller's to
	// refuse: filestore creates it at the first write only.)
	Existing bool

	// Names are what errors call the URL, KeyFile and PasswordFile, so
	// that they name what the user set: a command passes its flags
	// ("--storage", ...). Empty fields mean "storage", "key file" and
	// "password file".
	Names Names

	// Logger receives the warnings (a connection that is not protected, a
	// durability risk, a key that could not be checked). Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Names are what errors call the settings of Options.
type Names struct {
	URL, KeyFile, PasswordFile string
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o *Options) names() Names {
	n := o.Names
	if n.URL == "" {
		n.URL = "storage"
	}
	if n.KeyFile == "" {
		n.KeyFile = "key file"
	}
	if n.PasswordFile == "" {
		n.PasswordFile = "password file"
	}
	return n
}

// OptionsError reports options that do not go together or a URL of an
// unknown kind: a mistake of whoever configured the storage, which the
// certkeeper command reports as a usage error.
type OptionsError struct{ msg string }

func (e *OptionsError) Error() string { return e.msg }

// IsURL reports whether spec is a URL rather than a directory.
func IsURL(spec string) bool { return strings.Contains(spec, "://") }

// HoldsPassword reports whether the storage URL spec holds a password: in
// its user information (redis://:PASSWORD@host) or a query parameter
// named for one (sentinel_password=). A command that was given it on its
// command line warns that other users of the host can read it there.
func HoldsPassword(spec string) bool {
	if !IsURL(spec) {
		return false
	}
	_, rest, _ := strings.Cut(spec, "://")
	authority, _, _ := strings.Cut(rest, "/")
	authority, _, _ = strings.Cut(authority, "?")
	if userinfo, _, ok := strings.Cut(authority, "@"); ok && strings.Contains(userinfo, ":") {
		return true
	}
	_, query, _ := strings.Cut(spec, "?")
	return strings.Contains(strings.ToLower(query), "password=")
}

// Where names the storage spec for messages: a URL without its user
// information, query and fragment (redact.URL), and for Redis the key
// prefix when the URL sets one (" (prefix P)"), for PostgreSQL the
// schema (" (schema S)"), since several deployments may share one server
// under prefixes or schemas of their own and the address alone does not
// say which is meant (a mistyped one read as another). Neither is a
// secret.
func Where(spec string) string {
	where := redact.URL(spec)
	param := map[kind]string{redisKind: "prefix", postgresKind: "schema"}[kindOf(spec)]
	if param == "" {
		return where
	}
	_, rawQuery, ok := strings.Cut(spec, "?")
	if !ok {
		return where
	}
	rawQuery, _, _ = strings.Cut(rawQuery, "#")
	q, err := url.ParseQuery(rawQuery)
	// An @ in the query leaves unclear where a password ends (redact.URL
	// then shows none of the URL): nothing of the query is shown either.
	if err != nil || len(q[param]) == 0 || strings.Contains(rawQuery, "@") {
		return where
	}
	p := q[param]
	return fmt.Sprintf("%s (%s %q)", where, param, p[len(p)-1]) // the last, as the stores take it
}

// IsPostgres reports whether spec is a PostgreSQL URL.
func IsPostgres(spec string) bool { return kindOf(spec) == postgresKind }

// kind is the kind of storage a spec names.
type kind int

const (
	unknownKind kind = iota // a URL of a scheme no storage has
	dirKind
	redisKind
	postgresKind
)

// kindOf says which storage spec names; it is the one place that knows
// the URL schemes.
func kindOf(spec string) kind {
	scheme, _, ok := strings.Cut(spec, "://")
	if !ok {
		return dirKind
	}
	switch scheme = strings.ToLower(scheme); {
	case scheme == "postgres" || scheme == "postgresql":
		return postgresKind
	case strings.HasPrefix(scheme, "redis"):
		return redisKind
	}
	return unknownKind
}

// unknownScheme is the error for a URL whose scheme no storage has;
// prefix, if not empty, names the setting.
func unknownScheme(prefix, spec string) error {
	scheme, _, _ := strings.Cut(spec, "://")
	return &OptionsError{msg: fmt.Sprintf("%s%s: unknown scheme %q: give a directory or a redis://, rediss://, redis+cluster://, redis+sentinel:// or postgres:// URL", prefix, redact.URL(spec), scheme)}
}

// Check checks spec as Storage would open it, without connecting or
// reading anything: that it is a directory or a URL of a known scheme,
// and that the URL is well formed for its backend. It is for checking a
// configuration before anything starts (the certkeeper command's
// --check-config). An empty spec is a directory not yet chosen. Errors do
// not name the setting: the caller does.
func Check(spec string) error {
	switch kindOf(spec) {
	case postgresKind:
		return pgstore.CheckURL(spec)
	case redisKind:
		// Open does not connect.
		rs, err := redisstore.Open(spec)
		if err != nil {
			return err
		}
		return rs.Close()
	case unknownKind:
		return unknownScheme("", spec)
	}
	return nil
}

// CheckFiles checks the files opts names for spec as Storage would read
// them, without opening the storage: that opts.KeyFile holds storage keys
// and opts.PasswordFile a password (for a postgres:// spec only), each
// readable by its owner alone. It is Check's companion for --check-config:
// a key file others may read, refused at start, passed the check before.
func CheckFiles(spec string, opts Options) error {
	n := opts.names()
	if opts.PasswordFile != "" && !IsPostgres(spec) {
		return &OptionsError{msg: fmt.Sprintf("%s is for a postgres:// %s (a Redis URL holds its password itself)", n.PasswordFile, n.URL)}
	}
	var errs []error
	if opts.KeyFile != "" {
		if _, err := encrypted.ReadKeyFile(opts.KeyFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.KeyFile, err))
		}
	}
	if opts.PasswordFile != "" {
		if _, err := readPassword(opts.PasswordFile, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Storage opens the storage spec names: a directory, a Redis URL or a
// PostgreSQL URL, sealed at rest with opts.KeyFile if given (package
// storage/encrypted). closeFn releases its connections. Errors name the
// storage without credentials (redact.URL), and never quote a password.
func Storage(ctx context.Context, spec string, opts Options) (st storage.Storage, closeFn func(), err error) {
	if st, closeFn, err = backend(ctx, spec, &opts); err != nil {
		return nil, nil, err
	}
	where := Where(spec)
	if !opts.SkipDurability {
		unreachable, err := warnDurability(ctx, opts.logger(), st, where, opts.MustReach)
		if err != nil {
			closeFn()
			return nil, nil, err
		}
		if unreachable {
			closeFn = recheckDurability(ctx, opts.logger(), st, where, closeFn)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	n := opts.names()
	if opts.KeyFile == "" {
		if key := firstSealed(cctx, st); key != "" {
			closeFn()
			return nil, nil, fmt.Errorf("%s is encrypted (%s is sealed): give %s, the key file the proxy or server on it uses", where, key, n.KeyFile)
		}
		return st, closeFn, nil
	}
	keys, err := encrypted.ReadKeyFile(opts.KeyFile)
	if err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("%s: %w", n.KeyFile, err)
	}
	es := encrypted.New(st, keys)
	if err := es.Check(cctx); err != nil {
		switch {
		case errors.Is(err, encrypted.ErrWrongKey):
			closeFn()
			return nil, nil, fmt.Errorf("%s %s does not open what %s holds: %w", n.KeyFile, opts.KeyFile, where, err)
		case errors.Is(err, encrypted.ErrNotSealed) && !opts.AllowClear:
			closeFn()
			return nil, nil, fmt.Errorf("%s %s: %s holds private keys in clear and none sealed (%w)", n.KeyFile, opts.KeyFile, where, err)
		case errors.Is(err, encrypted.ErrNotSealed):
		default:
			// Storage unreachable now: the key is checked as values are read.
			opts.logger().Warn("could not check the storage key against storage", "err", err)
		}
	}
	return es, closeFn, nil
}

// backend opens the storage spec names, without encryption.
func backend(ctx context.Context, spec string, opts *Options) (storage.Storage, func(), error) {
	n := opts.names()
	if spec == "" {
		return nil, nil, &OptionsError{msg: "no " + n.URL + " given: a directory or a URL"}
	}
	if opts.PasswordFile != "" && !IsPostgres(spec) {
		return nil, nil, &OptionsError{msg: fmt.Sprintf("%s is for a postgres:// %s (a Redis URL holds its password itself)", n.PasswordFile, n.URL)}
	}
	switch kindOf(spec) {
	case postgresKind:
		ps, err := openPostgres(ctx, spec, *opts, n)
		if err != nil {
			return nil, nil, err
		}
		ps.Logger = opts.Logger
		if risk := ps.TransportRisk(); risk != "" {
			opts.logger().Warn("storage connection is not protected: "+risk, "storage", redact.URL(spec))
		}
		if ps.LeaseTTL == 0 {
			ps.LeaseTTL = opts.LeaseTTL
		}
		return ps, ps.Close, nil
	case unknownKind:
		return nil, nil, unknownScheme(n.URL+" ", spec)
	case redisKind:
		rs, err := redisstore.Open(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", n.URL, err)
		}
		rs.Logger = opts.Logger
		if rs.LeaseTTL == 0 {
			rs.LeaseTTL = opts.LeaseTTL
		}
		return rs, func() { _ = rs.Close() }, nil
	}
	return &filestore.Store{Dir: spec, LeaseTTL: opts.LeaseTTL}, func() {}, nil
}

// openPostgres opens a postgres:// URL, with the password read from
// passwordFile if there is one (else pgx reads PGPASSWORD or PGPASSFILE).
//
// The file is read again at each new connection, so that a rotated
// password (the file rewritten) is used without a restart; it is read
// once first, so that a bad file fails here, before anything connects.
// A long-running program (one that checks durability) starts when the
// server cannot be reached yet, as it does on a Redis that is down; the
// durability check then warns that it cannot be reached.
func openPostgres(ctx context.Context, spec string, opts Options, n Names) (*pgstore.Store, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	o := pgstore.Options{StartUnreachable: !opts.SkipDurability && !opts.MustReach, Existing: opts.Existing, Logger: opts.Logger}
	if passwordFile := opts.PasswordFile; passwordFile != "" {
		read := func(context.Context) (string, error) { return readPassword(passwordFile, n) }
		if _, err := read(ctx); err != nil {
			return nil, err
		}
		o.PasswordFunc = read
	}
	ps, err := pgstore.OpenWith(cctx, spec, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.URL, err)
	}
	return ps, nil
}

// readPassword reads a PostgreSQL password file: one line, the password
// alone, readable by its owner only (as libpq ignores a ~/.pgpass that
// others may read).
func readPassword(file string, n Names) (string, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.PasswordFile, err)
	}
	if e := fileowner.SecretExposure(file, fi); e != nil {
		return "", fmt.Errorf("%s %s: mode %04o lets %s %s it: %s", n.PasswordFile, file, fi.Mode().Perm(), e.Who, e.Access, e.Fix)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", n.PasswordFile, err)
	}
	password := strings.TrimRight(string(data), "\r\n")
	if password == "" || strings.ContainsAny(password, "\r\n") {
		return "", fmt.Errorf("%s %s: want the password alone on one line", n.PasswordFile, file)
	}
	return password, nil
}

// warnDurability logs a warning for each risk st's server runs, or that it
// could not be checked; the storage is opened either way, unless the
// server refused the login: that is a configuration error, not an outage
// to ride out (every read and write would fail until a restart), so it
// is returned, as is a server that cannot be reached when mustReach.
// unreachable reports a server that could not be reached (and was
// logged as such).
func warnDurability(ctx context.Context, logger *slog.Logger, st storage.Storage, where string, mustReach bool) (unreachable bool, err error) {
	dc, ok := st.(storage.DurabilityChecker)
	if !ok {
		return false, nil
	}
	risks, err := checkDurability(ctx, dc)
	switch {
	case errors.Is(err, redisstore.ErrAuthentication):
		return false, fmt.Errorf("%s: %w", where, err)
	case isUnreachable(err) && mustReach:
		return true, fmt.Errorf("%s cannot be reached: %w", where, err)
	case isUnreachable(err):
		logger.Warn("storage server cannot be reached: new names and renewals wait for it (certificates in memory are served); its durability is checked once it answers",
			"storage", where, "err", err)
		return true, nil
	}
	reportDurability(logger, where, risks, err)
	return false, nil
}

// checkDurability asks dc's server what it risks losing, for at most 5 s.
func checkDurability(ctx context.Context, dc storage.DurabilityChecker) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return dc.CheckDurability(ctx)
}

// isUnreachable reports whether err is a server that could not be reached.
func isUnreachable(err error) bool { return errors.As(err, new(*net.OpError)) }

// reportDurability logs the risks a server that answered runs, or why
// they could not be known (err).
func reportDurability(logger *slog.Logger, where string, risks []string, err error) {
	if err != nil {
		logger.Warn("storage durability cannot be checked: make sure the server persists what certkeeper stores",
			"storage", where, "err", err)
		return
	}
	for _, r := range risks {
		logger.Warn("storage may lose certificates and keys: "+r, "storage", where)
	}
}

// recheckFirst and recheckMax bound the waits between the durability
// checks of a server that could not be reached at open: from 1 s,
// doubling, to a minute.
const (
	recheckFirst = time.Second
	recheckMax   = time.Minute
)

// recheckDurability checks st's durability again in the background, with
// back-off, until its server answers, then logs the risks it runs as a
// start does when it answers (a node started before its Redis never
// heard that the Redis keeps nothing), or until the closeFn it returns,
// which stops the checks and then calls closeFn, is called.
func recheckDurability(ctx context.Context, logger *slog.Logger, st storage.Storage, where string, closeFn func()) func() {
	dc := st.(storage.DurabilityChecker) // warnDurability found it unreachable
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		start := time.Now()
		for wait := recheckFirst; ; wait = min(2*wait, recheckMax) {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			risks, err := checkDurability(ctx, dc)
			if isUnreachable(err) || ctx.Err() != nil {
				continue
			}
			logger.Info("storage server answers now: its durability was checked", "storage", where,
				"unreachable_for", time.Since(start).Round(time.Second), "risks", len(risks))
			reportDurability(logger, where, risks, err)
			return
		}
	}()
	return func() {
		cancel()
		<-done
		closeFn()
	}
}

// firstSealed returns the key of a sealed certificate in st, if its first
// few certificates include one; "" otherwise, also when st cannot be read.
func firstSealed(ctx context.Context, st storage.Storage) string {
	var sealed string
	n := 0
	_ = storage.EachCertificate(ctx, st, nil, func(key string, value []byte, _ *storage.Certificate, _ error) bool {
		if encrypted.IsSealed(value) {
			sealed = key
			return false
		}
		n++
		return n < 5
	})
	return sealed
}
