package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/pgstore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// storageUsage is the usage of --storage wherever it is taken.
const storageUsage = "`DIR` or URL of certkeeper's state: a directory, or redis://, rediss://,\nredis+cluster://, redis+sentinel://, postgres:// (docs/storage.md) (default: /var/lib/certkeeper\nfor root, else the user's data directory, e.g. ~/.local/share/certkeeper)"

// storageKeyUsage is the usage of --storage-key-file.
const storageKeyUsage = "`FILE` of the key(s) that encrypt private keys at rest in --storage\n(make one with: certkeeper storage keygen)"

// storagePasswordUsage is the usage of --storage-password-file.
const storagePasswordUsage = "`FILE` holding the password of a postgres:// --storage (else PGPASSWORD or PGPASSFILE;\nnever in the URL)"

// storageFlags are --storage, --storage-key-file and --storage-password-file.
type storageFlags struct {
	spec         string
	keyFile      string
	passwordFile string
	// rekey opens a storage whose private keys are all in clear with a
	// key file, for storage rekey to seal them.
	rekey bool
}

func (f *storageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.spec, "storage", "", storageUsage)
	fs.StringVar(&f.keyFile, "storage-key-file", "", storageKeyUsage)
	fs.StringVar(&f.passwordFile, "storage-password-file", "", storagePasswordUsage)
}

// where names the storage for messages, without credentials.
func (f *storageFlags) where() string { return storageWhere(f.spec) }

// open opens the storage the flags name.
func (f *storageFlags) open(ctx context.Context, env *Env) (storage.Storage, func(), error) {
	return openStorageFor(ctx, env, storageSpec{URL: f.spec, KeyFile: f.keyFile, PasswordFile: f.passwordFile}, 0, f.rekey)
}

// storageSpec is what the storage flags of a command say.
type storageSpec struct {
	URL          string // --storage: a directory or a URL; empty means the default directory
	KeyFile      string // --storage-key-file
	PasswordFile string // --storage-password-file
}

// isURL reports whether a --storage value is a URL rather than a path.
func isURL(spec string) bool { return strings.Contains(spec, "://") }

// storageWhere names a --storage value for messages: a path as it is, a
// URL as redact.URL gives it (no user information, query or fragment:
// they may hold passwords).
func storageWhere(spec string) string {
	if spec == "" {
		return defaultStorageDir()
	}
	return redact.URL(spec)
}

// openStorage opens --storage sp.URL: a directory (the default when it is
// empty), a Redis URL or a PostgreSQL URL; with sp.KeyFile, private keys
// are sealed at rest (package storage/encrypted). A key file that cannot
// open what storage holds, sealed values without a key file, and a key
// file for a storage whose private keys are all in clear (run storage
// rekey first), fail here, at start, rather than at the first handshake; a
// server whose settings may lose what is stored gets a warning. leaseTTL,
// if not zero, is the lease of its locks (a URL's lease parameter wins).
// close releases the storage's connections.
func openStorage(ctx context.Context, env *Env, sp storageSpec, leaseTTL time.Duration) (storage.Storage, func(), error) {
	return openStorageFor(ctx, env, sp, leaseTTL, false)
}

// openStorageFor is openStorage; with rekey, a storage whose private keys
// are all in clear opens with a key file, for storage rekey to seal them.
func openStorageFor(ctx context.Context, env *Env, sp storageSpec, leaseTTL time.Duration, rekey bool) (storage.Storage, func(), error) {
	spec, keyFile := sp.URL, sp.KeyFile
	var st storage.Storage
	closeFn := func() {}
	if sp.PasswordFile != "" && !isPostgres(spec) {
		return nil, nil, usagef("--storage-password-file is for a postgres:// --storage (a Redis URL holds its password itself)")
	}
	switch {
	case spec == "":
		st = &filestore.Store{Dir: defaultStorageDir(), LeaseTTL: leaseTTL}
	case isPostgres(spec):
		ps, err := openPostgres(ctx, spec, sp.PasswordFile)
		if err != nil {
			return nil, nil, err
		}
		ps.Logger = env.Logger
		if risk := ps.TransportRisk(); risk != "" {
			env.Logger.Warn("storage connection is not protected: "+risk, "storage", storageWhere(spec))
		}
		if ps.LeaseTTL == 0 {
			ps.LeaseTTL = leaseTTL
		}
		st = ps
		closeFn = ps.Close
	case isURL(spec):
		scheme, _, _ := strings.Cut(spec, "://")
		if !strings.HasPrefix(strings.ToLower(scheme), "redis") {
			return nil, nil, usagef("--storage %s: unknown scheme %q: give a directory or a redis://, rediss://, redis+cluster://, redis+sentinel:// or postgres:// URL", storageWhere(spec), scheme)
		}
		rs, err := redisstore.Open(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("--storage: %w", err)
		}
		rs.Logger = env.Logger
		if rs.LeaseTTL == 0 {
			rs.LeaseTTL = leaseTTL
		}
		st = rs
		closeFn = func() { _ = rs.Close() }
	default:
		st = &filestore.Store{Dir: spec, LeaseTTL: leaseTTL}
	}
	warnDurability(ctx, env, st, storageWhere(spec))
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if keyFile == "" {
		if key := firstSealed(cctx, st); key != "" {
			closeFn()
			return nil, nil, fmt.Errorf("%s holds encrypted private keys (%s): give the key file with --storage-key-file", storageWhere(spec), key)
		}
		return st, closeFn, nil
	}
	keys, err := encrypted.ReadKeyFile(keyFile)
	if err != nil {
		closeFn()
		return nil, nil, fmt.Errorf("--storage-key-file: %w", err)
	}
	es := encrypted.New(st, keys)
	if err := es.Check(cctx); err != nil {
		switch {
		case errors.Is(err, encrypted.ErrWrongKey):
			closeFn()
			return nil, nil, fmt.Errorf("--storage-key-file %s does not open what %s holds: %w", keyFile, storageWhere(spec), err)
		case errors.Is(err, encrypted.ErrNotSealed) && !rekey:
			closeFn()
			return nil, nil, fmt.Errorf("--storage-key-file %s: %s holds private keys in clear and none sealed (%w): to turn encryption on, stop every node using it and run once: certkeeper storage rekey --storage %s --storage-key-file %s",
				keyFile, storageWhere(spec), err, storageWhere(spec), keyFile)
		case errors.Is(err, encrypted.ErrNotSealed):
		default:
			// Storage unreachable now: the key is checked as values are read.
			env.Logger.Warn("could not check the storage key against storage", "err", err)
		}
	}
	return es, closeFn, nil
}

// isPostgres reports whether a --storage value is a PostgreSQL URL.
func isPostgres(spec string) bool {
	scheme, _, ok := strings.Cut(spec, "://")
	scheme = strings.ToLower(scheme)
	return ok && (scheme == "postgres" || scheme == "postgresql")
}

// openPostgres opens a postgres:// --storage, with the password read from
// passwordFile if there is one (else pgx reads PGPASSWORD or PGPASSFILE).
func openPostgres(ctx context.Context, spec, passwordFile string) (*pgstore.Store, error) {
	var password string
	if passwordFile != "" {
		// As libpq ignores a ~/.pgpass that others may read.
		fi, err := os.Stat(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--storage-password-file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("--storage-password-file %s: mode %v lets others read it; chmod 600 it", passwordFile, fi.Mode().Perm())
		}
		data, err := os.ReadFile(passwordFile)
		if err != nil {
			return nil, fmt.Errorf("--storage-password-file: %w", err)
		}
		password = strings.TrimRight(string(data), "\r\n")
		if password == "" || strings.ContainsAny(password, "\r\n") {
			return nil, fmt.Errorf("--storage-password-file %s: want the password alone on one line", passwordFile)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ps, err := pgstore.OpenPassword(cctx, spec, password)
	if err != nil {
		return nil, fmt.Errorf("--storage: %w", err)
	}
	return ps, nil
}

// warnDurability logs a warning for each risk st's server runs, or that it
// could not be checked; certkeeper carries on either way.
func warnDurability(ctx context.Context, env *Env, st storage.Storage, where string) {
	dc, ok := st.(storage.DurabilityChecker)
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	risks, err := dc.CheckDurability(cctx)
	if err != nil {
		env.Logger.Warn("storage durability cannot be checked: make sure the server persists what certkeeper stores",
			"storage", where, "err", err)
		return
	}
	for _, r := range risks {
		env.Logger.Warn("storage may lose certificates and keys: "+r, "storage", where)
	}
}

// firstSealed returns the key of a sealed certificate in st, if its first
// few certificates include one; "" otherwise, also when st cannot be read.
func firstSealed(ctx context.Context, st storage.Storage) string {
	var sealed string
	n := 0
	first := func(string) bool { n++; return n <= 5 }
	_ = storage.EachCertificate(ctx, st, first, func(key string, value []byte, _ *storage.Certificate, _ error) bool {
		if encrypted.IsSealed(value) {
			sealed = key
			return false
		}
		return true
	})
	return sealed
}
