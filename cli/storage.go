package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/term"
	"github.com/certkeeper/certkeeper/migrate"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/archive"
	"github.com/certkeeper/certkeeper/storage/open"
)

func storageCmd() *Command {
	return &Command{
		UsageLine: "certkeeper storage COMMAND [flags]",
		Short:     "export, import, migrate and encrypt certkeeper's state",
		Commands:  []*Command{storageExportCmd(), storageImportCmd(), storageMigrateCmd(), storageKeygenCmd(), storageRekeyCmd(), storageDeleteCmd()},
	}
}

func storageExportCmd() *Command {
	var sf storageFlags
	var out string
	return &Command{
		UsageLine: "certkeeper storage export [flags]",
		Short:     "write the whole state to one archive",
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
			fs.StringVar(&out, "out", "-", "`FILE` to write the archive to, or - for stdout")
		},
		ArgsHint: "the archive goes to --out FILE, or stdout",
		Run: func(ctx context.Context, env *Env, args []string) error {
			storageDir := sf.where()
			if !open.IsURL(sf.Storage) {
				if fi, err := os.Stat(storageDir); err != nil {
					return fmt.Errorf("storage %s: %w (is --storage right?)", storageDir, err)
				} else if !fi.IsDir() {
					return fmt.Errorf("storage %s is not a directory", storageDir)
				}
			}
			sf.existing = true
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			var stats archive.ExportStats
			if out == "" || out == "-" {
				if term.IsTerminal(env.Stdout) {
					return errors.New("refusing to write an archive holding private keys to a terminal: use --out FILE, or redirect stdout")
				}
				if err := keepPrivate(env, "storage export", "private keys"); err != nil {
					return err
				}
				out = "stdout"
				stats, err = archive.Export(ctx, st, env.Stdout)
			} else {
				stats, err = archive.ExportFile(ctx, st, out)
			}
			if ferr, ok := errors.AsType[*archive.ForeignKeysError](err); ok {
				return explainForeign(ferr, "storage "+storageDir, localDir(sf.Storage, storageDir), strayHint)
			}
			if err != nil {
				return err
			}
			warnInvalid(env, "left out of the archive", stats.Invalid)
			fmt.Fprintf(env.Stderr, "certkeeper: exported %s from %s to %s (%s)\n", cmdline.Plural(stats.Keys, "key"), storageDir, out, archive.ByteSize(stats.Bytes))
			return nil
		},
	}
}

func storageImportCmd() *Command {
	var sf storageFlags
	var overwrite bool
	return &Command{
		UsageLine: "certkeeper storage import [flags] FILE|-",
		Short:     "store the keys of an exported archive",
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
			fs.BoolVar(&overwrite, "overwrite", false, "replace keys stored with values that differ from the archive's")
		},
		TakesArgs: true,
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 {
				return usagef("storage import takes one argument, the archive FILE (or - for stdin)")
			}
			var r io.Reader
			name := args[0]
			if name == "-" {
				if term.IsTerminal(os.Stdin) {
					return errors.New("refusing to read an archive from a terminal: give its FILE, or redirect stdin")
				}
				r, name = os.Stdin, "stdin"
			} else {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			storageDir := sf.where()
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			stats, err := archive.Import(ctx, st, r, archive.ImportOptions{Overwrite: overwrite})
			if cerr, ok := errors.AsType[*archive.ConflictError](err); ok {
				return cerr.Explain(storageDir, "the archive")
			}
			if ferr, ok := errors.AsType[*archive.ForeignKeysError](err); ok {
				return explainForeign(ferr, "archive "+name, "", `"certkeeper storage export" never writes such an archive.`)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			msg := fmt.Sprintf("certkeeper: imported %s from %s into %s, %d skipped as identical", cmdline.Plural(stats.Imported, "key"), name, storageDir, stats.Skipped)
			if stats.Overwritten > 0 {
				msg += fmt.Sprintf(", %d overwritten", stats.Overwritten)
			}
			if len(stats.Newer) > 0 {
				msg += fmt.Sprintf(", %d kept: storage holds a certificate issued after the archive's (%s)", len(stats.Newer), strings.Join(stats.Newer, ", "))
			}
			fmt.Fprintln(env.Stderr, msg)
			return nil
		},
	}
}

// warnInvalid prints, sorted by key, the values an export or migration
// left out because certkeeper refuses them.
func warnInvalid(env *Env, what string, invalid map[string]error) {
	for _, key := range slices.Sorted(maps.Keys(invalid)) {
		fmt.Fprintf(env.Stderr, "certkeeper: warning: %s: %v\n", what, invalid[key])
	}
}

// localDir returns dir if spec, a --storage, names a directory rather than
// a URL, else "".
func localDir(spec, dir string) string {
	if open.IsURL(spec) {
		return ""
	}
	return dir
}

// strayHint ends explainForeign's message for a storage directory.
const strayHint = "If it is certkeeper's storage, move those files out of it and run this again."

// explainForeign is the error storage export, import and migrate end
// with when what they read (src: "--from DIR", "storage DIR", "archive
// FILE") holds keys certkeeper never writes: the library's (which keys,
// nothing written), the command that takes over another ACME client's
// state, which such a directory usually is (dir, if src is one), and tail.
func explainForeign(e *archive.ForeignKeysError, src, dir, tail string) error {
	if dir == "" {
		dir = "DIR"
	}
	return fmt.Errorf("%s: %w; to take over another ACME client's certificates and accounts, use certkeeper import --from TOOL %s (TOOL: %s). %s",
		src, e, dir, strings.Join(migrate.Tools(), ", "), tail)
}

func storageDeleteCmd() *Command {
	var sf storageFlags
	return &Command{
		UsageLine: "certkeeper storage delete [flags] NAME|KEY...",
		Short:     "remove a certificate, a damaged record or a failing name from storage",
		Flags:     func(fs *flag.FlagSet) { cmdline.Bind(fs, &sf) },
		TakesArgs: true,
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 {
				return usagef("storage delete needs a NAME or KEY (certkeeper status lists them)")
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			for _, what := range args {
				removed, err := status.Remove(ctx, st, what)
				for _, key := range removed {
					fmt.Fprintf(env.Stdout, "removed %s\n", key)
				}
				if errors.Is(err, status.ErrNothingStored) {
					return fmt.Errorf("%w in %s: certkeeper status lists what is", err, sf.where())
				} else if err != nil {
					return err
				}
			}
			return nil
		},
	}
}
