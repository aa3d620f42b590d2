package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/open"
)

// storageFlags are --storage, --storage-key-file and --storage-password-file
// (and config keys of the same names), of every command that opens storage.
type storageFlags struct {
	Storage     string `yaml:"storage" secret:"url" arg:"DIR" help:"DIR or URL of certkeeper's state: a directory, or redis://, rediss://,\nredis+cluster://, redis+sentinel://, postgres:// (docs/storage.md) (default: /var/lib/certkeeper\nfor root and for a systemd unit's StateDirectory=certkeeper, else the user's data directory,\ne.g. ~/.local/share/certkeeper)"`
	StorageKey  string `yaml:"storage_key_file" arg:"FILE" help:"FILE of the key(s) that encrypt private keys at rest in --storage\n(make one with: certkeeper storage keygen)"`
	StoragePass string `yaml:"storage_password_file" arg:"FILE" help:"FILE holding the password of a postgres:// --storage (else PGPASSWORD or PGPASSFILE;\nnever in the URL)"`
	// rekey opens a storage whose private keys are all in clear with a
	// key file, for storage rekey to seal them.
	rekey bool
	// durable warns of the server's durability risks (open.Options): proxy
	// and server, which keep running on it, and migrate's destination.
	durable bool
	// existing refuses a PostgreSQL schema that does not exist (status,
	// storage export: a typo is not an empty storage).
	existing bool
	// migrateTo is migrate's destination: durable, but a server that
	// cannot be reached fails it (open.Options.MustReach).
	migrateTo bool
	// names are the flags errors name (storage migrate's --from and --to
	// sides); zero: --storage, --storage-key-file, --storage-password-file.
	names open.Names
}

// where names the storage for messages, without credentials.
func (f *storageFlags) where() string { return storageWhere(f.Storage) }

// open opens the storage the flags name (openStorage, leases of the
// store's default length).
func (f *storageFlags) open(ctx context.Context, env *Env) (storage.Storage, func(), error) {
	return openStorage(ctx, env, *f, 0)
}

// checkDir refuses, at start, a --storage directory this user may not
// read and write (filestore.Store.Check), which would otherwise fail only
// at the first handshake; a URL is not checked here.
// A relative default (no $HOME, as in a container) is refused outside
// development mode (dev): the working directory is the image's throwaway
// layer, and each restart would order every certificate again.
func (f *storageFlags) checkDir(dev bool) error {
	dir := storageWhere(f.Storage)
	if open.IsURL(dir) {
		return nil
	}
	if err := f.checkDefault(dev); err != nil {
		return err
	}
	err := filestore.New(dir).Check()
	if errors.Is(err, fs.ErrPermission) {
		who := strconv.Itoa(os.Geteuid()) // this process's user, not the one who pastes the fix
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		hint := fmt.Sprintf("give it to this user (sudo chown -R %s %s; chmod 700 %s), or run certkeeper as the user who owns it (sudo -u OWNER)", who, dir, dir)
		if _, serr := os.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
			hint = fmt.Sprintf("create it for this user (sudo install -d -o %s -m 700 %s), or give --storage a directory this user may create", who, dir)
		}
		return &hintError{err: fmt.Errorf("--storage %s: this user cannot read and write it: %w", dir, err), hint: hint}
	} else if err != nil {
		return fmt.Errorf("--storage %s: %w", dir, err)
	}
	return nil
}

// checkDefault refuses a relative default directory (checkDir) outside
// development mode; --check-config calls it too.
func (f *storageFlags) checkDefault(dev bool) error {
	if dir := storageWhere(f.Storage); f.Storage == "" && !filepath.IsAbs(dir) && !dev {
		return usagef("no --storage, and no $HOME for the default: certificates and the account would be kept in ./%s, in the working directory, "+
			"lost with a container and ordered again at each restart: give --storage DIR (a volume that outlives the process)", dir)
	}
	return nil
}

// flagNames are what errors call the storage's flags.
func (f *storageFlags) flagNames() open.Names {
	if f.names != (open.Names{}) {
		return f.names
	}
	return open.Names{URL: "--storage", KeyFile: "--storage-key-file", PasswordFile: "--storage-password-file"}
}

// storageWhere names a --storage value for messages: a path as it is, a
// URL as open.Where gives it (no user information, query or fragment:
// they may hold passwords; a Redis key prefix is shown).
func storageWhere(spec string) string {
	if spec == "" {
		return certkeeper.DefaultStorageDir()
	}
	return open.Where(spec)
}

// openStorage opens --storage sf.Storage (the default directory when it
// is empty) with package storage/open, naming the flags in its errors. A
// key file that cannot open what storage holds, sealed values without a
// key file, and a key file for a storage whose private keys are all in
// clear (run storage rekey first; unless sf.rekey), fail here, at start,
// rather than at the first handshake. leaseTTL, if not zero, is the lease
// of its locks (a URL's lease parameter wins). close releases the
// storage's connections.
func openStorage(ctx context.Context, env *Env, sf storageFlags, leaseTTL time.Duration) (storage.Storage, func(), error) {
	spec := sf.Storage
	if spec == "" {
		spec = certkeeper.DefaultStorageDir()
	}
	names := sf.flagNames()
	st, closeFn, err := open.Storage(ctx, spec, open.Options{KeyFile: sf.StorageKey, PasswordFile: sf.StoragePass, LeaseTTL: leaseTTL,
		AllowClear: sf.rekey, SkipDurability: !sf.durable && !sf.migrateTo, MustReach: sf.migrateTo, Existing: sf.existing, Logger: env.Logger, Names: names})
	if oerr, ok := errors.AsType[*open.OptionsError](err); ok {
		return nil, nil, usagef("%s", oerr)
	}
	if errors.Is(err, encrypted.ErrNotSealed) {
		return nil, nil, fmt.Errorf("%w: to turn encryption on, stop every node using it and run once: certkeeper storage rekey --storage %s --storage-key-file %s",
			err, storageWhere(sf.Storage), sf.StorageKey)
	}
	return st, closeFn, err
}
