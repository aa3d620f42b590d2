package cli

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/open"
	"github.com/certkeeper/certkeeper/truststore"
)

func caCmd() *Command {
	return &Command{
		UsageLine: "certkeeper ca COMMAND [flags]",
		Short:     "manage certkeeper's local CA",
		Commands:  []*Command{caRootCmd(), caTrustCmd(), caUntrustCmd()},
	}
}

func caRootCmd() *Command {
	var sf storageFlags
	return &Command{
		UsageLine: "certkeeper ca root [flags]",
		Short:     "print the local CA's root certificate (PEM)",
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			root, err := localCARoot(ctx, env, &sf, true)
			if err != nil {
				return err
			}
			return pem.Encode(env.Stdout, &pem.Block{Type: "CERTIFICATE", Bytes: root.Raw})
		},
	}
}

// caTrustCmd and caUntrustCmd install the local CA's root into the
// machine's trust stores and remove it again.
func caTrustCmd() *Command   { return caTrustCommand(true) }
func caUntrustCmd() *Command { return caTrustCommand(false) }

func caTrustCommand(install bool) *Command {
	var sf storageFlags
	var noSystem, noNSS bool
	var rootFile string
	c := &Command{
		UsageLine: "certkeeper ca trust [flags]",
		Short:     "trust the local CA on this machine (system store and browsers)",
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
			fs.BoolVar(&noSystem, "no-system", false, "leave the operating system's trust store alone")
			fs.BoolVar(&noNSS, "no-nss", false, "leave the browsers' NSS databases alone")
			fs.StringVar(&rootFile, "root-file", "", "the root certificate `FILE` (PEM, as ca root prints it on the CA's host) instead of\nthe CA in --storage: for the machines of its clients, which hold none of its keys")
		},
	}
	done := "trusted"
	if !install {
		done = "no longer trusted"
		c.UsageLine = "certkeeper ca untrust [flags]"
		c.Short = "remove the local CA from this machine's trust stores"
	}
	c.Run = func(ctx context.Context, env *Env, args []string) error {
		if noSystem && noNSS {
			return usagef("--no-system and --no-nss together leave nothing to do")
		}
		root, err := trustedRoot(ctx, env, &sf, rootFile, install)
		if err != nil {
			return err
		}
		o := truststore.Options{SkipSystem: noSystem, SkipNSS: noNSS}
		apply := truststore.Trust
		if !install {
			apply = truststore.Untrust
		}
		results, err := apply(ctx, root, o)
		truststore.WriteDone(env.Stdout, root, done, results)
		return err // "certkeeper ca trust: " says which command
	}
	return c
}

// trustedRoot is the root ca trust installs (or ca untrust removes): the
// --root-file certificate (truststore refuses one not a CA's), or the local CA's.
func trustedRoot(ctx context.Context, env *Env, sf *storageFlags, rootFile string, install bool) (*x509.Certificate, error) {
	if rootFile == "" {
		return localCARoot(ctx, env, sf, install)
	}
	return readCertFile("--root-file", rootFile)
}

// localCARoot returns the root of the local CA kept in --storage. A
// --storage directory that does not exist is refused rather than given a
// new CA: it is far more often a typo, and a root printed or trusted from
// it is not the one the proxy's certificates chain to. create says
// whether a storage that exists but holds no CA gets one (ca root, ca
// trust, said on stderr) or its absence is an error (ca untrust).
func localCARoot(ctx context.Context, env *Env, sf *storageFlags, create bool) (*x509.Certificate, error) {
	where := sf.where()
	hint := "give the --storage of the proxy, server or cert issue --ca local whose certificates you mean; they create the CA there on first use"
	if !open.IsURL(where) {
		if _, err := os.Stat(where); errors.Is(err, fs.ErrNotExist) {
			return nil, &hintError{err: fmt.Errorf("no local CA in %s: the directory does not exist (is --storage right?)", where), hint: hint}
		}
	}
	st, closeStorage, err := sf.open(ctx, env)
	if err != nil {
		return nil, err
	}
	defer closeStorage()
	ca := &localca.CA{Storage: st, Logger: env.Logger}
	root, err := ca.StoredRoot(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, &hintError{err: fmt.Errorf("no local CA in %s (is --storage right?)", where), hint: hint}
		}
		// Another CA's storage is a wrong --storage (a trial printed a root nothing chained to).
		if keys, lerr := st.List(ctx, ""); lerr == nil && len(keys) > 0 {
			return nil, &hintError{err: fmt.Errorf("no local CA in %s, which holds other certificates or accounts (is --storage right?)", where),
				hint: hint + " (cert issue --ca local -d NAME --storage " + where + " creates one there)"}
		}
		if root, err = ca.Root(ctx); err == nil {
			fmt.Fprintf(env.Stderr, "certkeeper: %s held no local CA: created a new one (if you meant an existing CA, check --storage)\n", where)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("local CA in %s: %w", where, err)
	}
	return root, nil
}
