package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// The glue between the cert commands' flags and the renewal settings
// certfile/renew remembers per certificate (issue 17): each settings key
// is the flag of the same name with "-" for "_" (tls_alpn_addr is --tls-alpn-addr).

// settingsFromFlags returns the remembered settings given on fs's command
// line, and those named in always even at their defaults (cert issue
// records its CA, challenge and key type whatever they are).
func settingsFromFlags(fs *flag.FlagSet, always ...string) (renew.Settings, error) {
	s, err := renew.FromFlags(fs, func(fl *flag.Flag) []string {
		switch l := fl.Value.(type) {
		case *cmdline.Strings:
			return *l
		case *cmdline.Settings:
			return l.Entries()
		}
		return nil
	}, always...)
	if err != nil {
		return renew.Settings{}, usagef("%v", err)
	}
	return s, nil
}

// withSettings returns the flags to issue with for a certificate's
// remembered settings: s applied to the defaults, with this run's
// storage, timeout, --no-wait, EAB and --tsig-key (never remembered).
func (f *issueFlags) withSettings(s renew.Settings) (*issueFlags, error) {
	g := &issueFlags{}
	fs := flag.NewFlagSet("renewal settings", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.registerCA(fs)
	g.storageFlags = f.storageFlags
	g.timeout, g.noWait, g.outDir = f.timeout, f.noWait, f.outDir
	g.EABKID, g.EABHMAC, g.dns.TSIGKey = f.EABKID, f.EABHMAC, f.dns.TSIGKey
	err := s.ApplyFlags(fs, append(renew.HookKeys(), renew.StorageKeys()...)...) // cert renew runs hooks itself, on one storage
	switch g.challenge {
	case acmeca.HTTP01, acmeca.TLSALPN01, acmeca.DNS01, acmeca.DNSPersist01:
	default:
		err = errors.Join(err, fmt.Errorf("challenge = %s: use http-01, tls-alpn-01, dns-01 or dns-persist-01", g.challenge))
	}
	if err != nil {
		return nil, fmt.Errorf("renewal settings (fix them with cert renew's flags, or edit the file cert show names): %w", err)
	}
	return g, nil
}

// settings are the renewal settings of this cert issue: the flags given,
// and the CA, challenge, key type and storage even at their defaults, so
// the file says where it came from and cert renew, run by another user
// or with another default, renews with the same account and local CA.
func (f *issueFlags) settings() (renew.Settings, error) {
	s, err := settingsFromFlags(f.fs, "ca", "challenge", "key-type", "storage")
	if s.CA == "" && err == nil {
		s.CA = f.ca() // --ca not given: its default
	}
	return s, err
}

// remember writes the settings cert issue was given for the certificate
// named name, for cert renew.
func (f *issueFlags) remember(name string) (renew.Settings, error) {
	s, err := f.settings()
	if err != nil {
		return s, err
	}
	path, err := renew.SettingsPath(certfile.Dir(f.outDir), name)
	if err != nil {
		return s, err
	}
	return s, renew.SaveSettings(path, s)
}

func certShowCmd() *Command {
	var outDir string
	return &Command{
		UsageLine: "certkeeper cert show [NAME] [flags]",
		Short:     "show a certificate's files and the settings cert renew uses for it",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&outDir, "out-dir", "", "the `DIR` cert issue and cert renew write to (default: /etc/ssl for root, else ~/.acme)")
		},
		TakesArgs: true,
		Run: func(ctx context.Context, env *Env, args []string) error {
			return showCert(env, outDir, args)
		},
	}
}

func certDeleteCmd() *Command {
	var outDir string
	var yes bool
	var sf storageFlags
	return &Command{
		UsageLine:  "certkeeper cert delete NAME [--yes] [flags]",
		OtherNames: []string{"delete (certbot)", "remove"},
		Short:      "stop renewing a certificate: remove its files and renewal settings",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&outDir, "out-dir", "", "the `DIR` cert issue and cert renew write to (default: /etc/ssl for root, else ~/.acme)")
			fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
			cmdline.Bind(fs, &sf)
		},
		TakesArgs: true,
		Spellings: otherTools,
		Run: func(ctx context.Context, env *Env, args []string) error {
			dir, name, p, err := certFilesOf(outDir, args)
			if err != nil {
				return err
			}
			if _, err := os.Stat(p.Cert); errors.Is(err, fs.ErrNotExist) { // said before asking
				return fmt.Errorf("no certificate %s in %s: %s", name, dir, holds(dir))
			}
			if !yes && !confirm(env, fmt.Sprintf("Delete the certificate %s and its key from %s? Type yes: ", name, dir)) {
				return fmt.Errorf("not deleted")
			}
			if rs, err := renew.RememberedStorage(dir, name); err == nil && sf.Storage == "" && rs.Storage != "" {
				// Where cert issue kept its copy, as cert renew opens it (a
				// trial's deleted certificate stayed there, in status).
				sf.Storage, sf.StorageKey, sf.StoragePass = rs.Storage, rs.StorageKeyFile, rs.StoragePasswordFile
				fmt.Fprintf(env.Stderr, "certkeeper: storage %s, which the certificate remembers (--storage chooses another)\n", storageWhere(rs.Storage))
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			removed, err := renew.Remove(ctx, dir, name, st)
			for _, f := range removed {
				fmt.Fprintf(env.Stdout, "removed %s\n", f)
			}
			return err
		},
	}
}

// certFilesOf is the --out-dir (or the default), the normalised NAME of
// cert show and cert delete, and its files (without one NAME, dir too).
func certFilesOf(outDir string, args []string) (dir certfile.Dir, name string, p certfile.Paths, err error) {
	if dir = certfile.Dir(outDir); outDir == "" {
		if dir, err = certfile.DefaultDir(); err != nil {
			return "", "", p, fmt.Errorf("no --out-dir given and no default: %w", err)
		}
	}
	if len(args) != 1 {
		return dir, "", p, usagef("give one NAME: the first name of the certificate, which names its files; in %s %s", dir, holds(dir))
	}
	names, err := normalizeNames("NAME", []string{certfile.NameOfBase(args[0])})
	if err != nil {
		return "", "", p, err
	}
	if p, err = dir.Paths(names[0]); err != nil {
		return "", "", p, usagef("%v", err)
	}
	return dir, names[0], p, nil
}

// showCert runs "cert show".
func showCert(env *Env, outDir string, args []string) error {
	dir, name, _, err := certFilesOf(outDir, args)
	if len(args) == 0 && dir != "" { // what --out-dir holds, to choose a NAME from
		return renew.List(env.Stdout, dir)
	}
	if err != nil {
		return err
	}
	err = renew.Show(env.Stdout, dir, name)
	var rerr *renew.ReadError
	switch {
	case errors.As(err, &rerr) && errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no certificate %s in %s: %s", rerr.Name, rerr.Dir, holds(rerr.Dir))
	case errors.As(err, &rerr):
		return fmt.Errorf("reading the certificate files of %s in %s (is --out-dir right?): %w", rerr.Name, rerr.Dir, rerr.Err)
	}
	return err
}

// holds says which certificates dir holds, for an error that names one it
// does not: their names, or that it holds none.
func holds(dir certfile.Dir) string {
	pairs, err := dir.Pairs()
	if err != nil || len(pairs) == 0 {
		return "it holds none (is --out-dir right?)"
	}
	bases := make([]string, len(pairs))
	for i, p := range pairs {
		bases[i] = p.Base
	}
	return "it holds " + strings.Join(bases, ", ")
}
