package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/term"
	"github.com/certkeeper/certkeeper/storage/archive"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/open"
)

func storageMigrateCmd() *Command {
	from := storageFlags{names: open.Names{URL: "--from", KeyFile: "--from-key-file", PasswordFile: "--from-password-file"}}
	to := storageFlags{names: open.Names{URL: "--to", KeyFile: "--to-key-file", PasswordFile: "--to-password-file"}, migrateTo: true}
	var overwrite bool
	return &Command{
		UsageLine: "certkeeper storage migrate --from DIR|URL --to DIR|URL [flags]",
		Short:     "copy the whole state from one storage to another",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from.Storage, "from", "", "`DIR` or URL of the storage to copy from (as --storage takes)")
			fs.StringVar(&from.StorageKey, "from-key-file", "", "storage key `FILE` of --from, if it is encrypted")
			fs.StringVar(&to.Storage, "to", "", "`DIR` or URL of the storage to copy to")
			fs.StringVar(&to.StorageKey, "to-key-file", "", "storage key `FILE` to encrypt private keys with in --to")
			fs.StringVar(&from.StoragePass, "from-password-file", "", "`FILE` holding the password of a postgres:// --from")
			fs.StringVar(&to.StoragePass, "to-password-file", "", "`FILE` holding the password of a postgres:// --to")
			fs.BoolVar(&overwrite, "overwrite", false, "replace keys stored in --to with values that differ from --from's")
		},
		ArgsHint: "the storages go with --from and --to (e.g. --from /var/lib/certkeeper --to redis://10.0.0.5:6379/0)",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if from.Storage == "" || to.Storage == "" {
				return usagef("storage migrate needs --from and --to")
			}
			if from.Storage == to.Storage {
				return usagef("--from and --to are the same storage")
			}
			if !open.IsURL(from.Storage) {
				if _, err := os.Stat(from.Storage); err != nil {
					return fmt.Errorf("--from: %w", err)
				}
			}
			src, closeSrc, err := from.open(ctx, env)
			if err != nil {
				return cmdline.Prefix("--from", err)
			}
			defer closeSrc()
			dst, closeDst, err := to.open(ctx, env)
			if err != nil {
				return cmdline.Prefix("--to", err)
			}
			defer closeDst()
			stats, err := archive.Copy(ctx, src, dst, archive.ImportOptions{Overwrite: overwrite})
			warnInvalid(env, "not migrated", stats.Invalid)
			if cerr, ok := errors.AsType[*archive.ConflictError](err); ok {
				return cerr.Explain(to.where(), "--from "+from.where())
			}
			if ferr, ok := errors.AsType[*archive.ForeignKeysError](err); ok {
				return explainForeign(ferr, "--from "+from.where(), localDir(from.Storage, from.where()), strayHint)
			}
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("certkeeper: migrated %s from %s to %s: %d copied, %d already there",
				cmdline.Plural(stats.Keys, "key"), from.where(), to.where(), stats.Imported, stats.Skipped)
			if stats.Overwritten > 0 {
				msg += fmt.Sprintf(" (%d of them over other values)", stats.Overwritten)
			}
			if len(stats.Newer) > 0 {
				msg += fmt.Sprintf(", %d kept: %s holds a certificate issued after --from's (%s)", len(stats.Newer), to.where(), strings.Join(stats.Newer, ", "))
			}
			fmt.Fprintln(env.Stderr, msg+"; verified")
			return nil
		},
	}
}

func storageKeygenCmd() *Command {
	return &Command{
		UsageLine: "certkeeper storage keygen > FILE",
		Short:     "print a new storage key, for --storage-key-file",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if err := keepPrivate(env, "storage keygen", "a storage key"); err != nil {
				return err
			}
			_, err := env.Stdout.Write(encrypted.GenerateKey())
			return err
		},
	}
}

func storageRekeyCmd() *Command {
	sf := storageFlags{rekey: true}
	return &Command{
		UsageLine: "certkeeper storage rekey --storage-key-file FILE [flags]",
		Short:     "encrypt every private key in storage with the key file's first key",
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if sf.StorageKey == "" {
				return usagef("storage rekey needs --storage-key-file")
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			es, ok := st.(*encrypted.Store)
			if !ok {
				return errors.New("storage rekey: no encrypted storage")
			}
			stats, err := es.Rekey(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "certkeeper: %d private keys in %s sealed with key %s (%d of them were in clear), %d already were\n",
				stats.Sealed, sf.where(), es.Keys[0].ID, stats.Clear, stats.Current)
			return nil
		},
	}
}

// keepPrivate makes stdout private (term.MakePrivate) when it is a file
// others may read, before cmd (storage keygen, storage export) writes
// secrets (what) to it, and says so.
func keepPrivate(env *Env, cmd, what string) error {
	from, to, err := term.MakePrivate(env.Stdout)
	if err != nil {
		return fmt.Errorf("refusing to write %s to stdout, a file of mode %#o that others may read, "+
			"and making it private failed: %w; write it with (umask 077; certkeeper %s > FILE)", what, from, err, cmd)
	}
	if from != 0 {
		fmt.Fprintf(env.Stderr, "certkeeper: stdout is a file of mode %#o: made it %#o, since it holds %s\n", from, to, what)
	}
	return nil
}
