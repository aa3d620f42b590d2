package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/open"
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

// storageWhere names a --storage value for messages: a path as it is, a
// URL as redact.URL gives it (no user information, query or fragment:
// they may hold passwords).
func storageWhere(spec string) string {
	if spec == "" {
		return certkeeper.DefaultStorageDir()
	}
	return redact.URL(spec)
}

// openStorage opens --storage sp.URL (the default directory when it is
// empty) with package storage/open, naming the flags in its errors. A key
// file that cannot open what storage holds, sealed values without a key
// file, and a key file for a storage whose private keys are all in clear
// (run storage rekey first), fail here, at start, rather than at the first
// handshake. leaseTTL, if not zero, is the lease of its locks (a URL's
// lease parameter wins). close releases the storage's connections.
func openStorage(ctx context.Context, env *Env, sp storageSpec, leaseTTL time.Duration) (storage.Storage, func(), error) {
	return openStorageFor(ctx, env, sp, leaseTTL, false)
}

// openStorageFor is openStorage; with rekey, a storage whose private keys
// are all in clear opens with a key file, for storage rekey to seal them.
func openStorageFor(ctx context.Context, env *Env, sp storageSpec, leaseTTL time.Duration, rekey bool) (storage.Storage, func(), error) {
	spec := sp.URL
	if spec == "" {
		spec = certkeeper.DefaultStorageDir()
	}
	st, closeFn, err := open.Storage(ctx, spec, open.Options{KeyFile: sp.KeyFile, PasswordFile: sp.PasswordFile, LeaseTTL: leaseTTL,
		AllowClear: rekey, Logger: env.Logger,
		Names: open.Names{URL: "--storage", KeyFile: "--storage-key-file", PasswordFile: "--storage-password-file"}})
	if oerr, ok := errors.AsType[*open.OptionsError](err); ok {
		return nil, nil, usagef("%s", oerr)
	}
	if errors.Is(err, encrypted.ErrNotSealed) {
		return nil, nil, fmt.Errorf("%w: to turn encryption on, stop every node using it and run once: certkeeper storage rekey --storage %s --storage-key-file %s",
			err, storageWhere(sp.URL), sp.KeyFile)
	}
	return st, closeFn, err
}
