package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// storageUsage is the usage of --storage wherever it is taken.
const storageUsage = "`DIR` or URL of certkeeper's state: a directory, or redis://, rediss://,\nredis+cluster://, redis+sentinel:// (docs/storage.md) (default: /var/lib/certkeeper for\nroot, else the user's data directory, e.g. ~/.local/share/certkeeper)"

// storageKeyUsage is the usage of --storage-key-file.
const storageKeyUsage = "`FILE` of the key(s) that encrypt private keys at rest in --storage\n(make one with: certkeeper storage keygen)"

// storageFlags are --storage and --storage-key-file.
type storageFlags struct {
	spec    string
	keyFile string
	// rekey opens a storage whose private keys are all in clear with a
	// key file, for storage rekey to seal them.
	rekey bool
}

func (f *storageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.spec, "storage", "", storageUsage)
	fs.StringVar(&f.keyFile, "storage-key-file", "", storageKeyUsage)
}

// where names the storage for messages, without credentials.
func (f *storageFlags) where() string { return storageWhere(f.spec) }

// open opens the storage the flags name.
func (f *storageFlags) open(ctx context.Context, env *Env) (storage.Storage, func(), error) {
	return openStorageFor(ctx, env, f.spec, f.keyFile, 0, f.rekey)
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

// openStorage opens --storage spec: a directory (the default when spec is
// empty) or a Redis URL; with keyFile, private keys are sealed at rest
// (package storage/encrypted). A key file that cannot open what storage
// holds, sealed values without a key file, and a key file for a storage
// whose private keys are all in clear (run storage rekey first), fail
// here, at start, rather than at the first handshake. leaseTTL, if not
// zero, is the lease of its locks (a URL's lease parameter wins). close
// releases the storage's connections.
func openStorage(ctx context.Context, env *Env, spec, keyFile string, leaseTTL time.Duration) (storage.Storage, func(), error) {
	return openStorageFor(ctx, env, spec, keyFile, leaseTTL, false)
}

// openStorageFor is openStorage; with rekey, a storage whose private keys
// are all in clear opens with a key file, for storage rekey to seal them.
func openStorageFor(ctx context.Context, env *Env, spec, keyFile string, leaseTTL time.Duration, rekey bool) (storage.Storage, func(), error) {
	var st storage.Storage
	closeFn := func() {}
	switch {
	case spec == "":
		st = &filestore.Store{Dir: defaultStorageDir(), LeaseTTL: leaseTTL}
	case isURL(spec):
		scheme, _, _ := strings.Cut(spec, "://")
		if !strings.HasPrefix(strings.ToLower(scheme), "redis") {
			return nil, nil, usagef("--storage %s: unknown scheme: give a directory or a redis://, rediss://, redis+cluster:// or redis+sentinel:// URL", storageWhere(spec))
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

// firstSealed returns the key of a sealed certificate in st, if its first
// few certificates include one; "" otherwise, also when st cannot be read.
func firstSealed(ctx context.Context, st storage.Storage) string {
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return ""
	}
	for i, key := range keys {
		if i >= 5 {
			break
		}
		if v, err := st.Load(ctx, key); err == nil && encrypted.IsSealed(v) {
			return key
		}
	}
	return ""
}
