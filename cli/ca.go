package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/truststore"
)

func caCmd() *Command {
	return &Command{
		UsageLine: "certkeeper ca COMMAND [flags]",
		Short:     "manage certkeeper's local CA",
		Long: `certkeeper's local CA issues certificates with no network, for intranets and development
(--ca local). Its root and intermediate are kept in --storage and created on first use.`,
		Commands: []*Command{caRootCmd(), caTrustCmd(), caUntrustCmd()},
	}
}

func caRootCmd() *Command {
	var sf storageFlags
	return &Command{
		UsageLine: "certkeeper ca root [flags]",
		Short:     "print the local CA's root certificate (PEM)",
		Long: `Root prints the local CA's root certificate as PEM, creating the CA if it does not
exist yet. Give it to the clients that should trust certificates from --ca local:

	certkeeper cert issue --ca local -d localhost --out-dir ./certs
	certkeeper ca root > certkeeper-root.pem
	openssl verify -CAfile certkeeper-root.pem -untrusted certs/certs/localhost.pem certs/certs/localhost.pem
	curl --cacert certkeeper-root.pem https://localhost:8443/

To trust it on this machine (system store and browsers) in one step: certkeeper ca trust.`,
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			ca := &localca.CA{Storage: st, Logger: env.Logger}
			pem, err := ca.RootPEM(ctx)
			if err != nil {
				return fmt.Errorf("local CA in %s: %w", sf.where(), err)
			}
			_, err = env.Stdout.Write(pem)
			return err
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
	c := &Command{
		UsageLine: "certkeeper ca trust [flags]",
		Short:     "trust the local CA on this machine (system store and browsers)",
		Long: `Trust installs the local CA's root certificate (creating the CA if needed) into this
machine's trust store, so that curl, OpenSSL, Go programs and browsers accept certificates from
--ca local without --cacert:

	sudo certkeeper ca trust --storage ~/.local/share/certkeeper
	curl https://localhost:8443/

The system store is changed with the system's own tool: update-ca-certificates (Debian,
Ubuntu, Alpine, openSUSE), update-ca-trust (Fedora, RHEL), trust (Arch), certctl (FreeBSD),
security (macOS, System keychain) or certutil.exe (Windows, Trusted Root); this needs root or
an administrator. Under sudo the default --storage is root's (/var/lib/certkeeper), another CA
than yours: give the --storage of the proxy whose certificates should be trusted (its
development-mode banner prints the whole command). Where NSS's certutil is installed (Debian: libnss3-tools), the root is also
added to the NSS databases Firefox and Chromium keep in your home directory; run it once more
as yourself with --no-system when sudo changed the home directory. Undo it all with
certkeeper ca untrust. Tested on Debian; the other systems follow their documented commands.`,
		Flags: func(fs *flag.FlagSet) {
			cmdline.Bind(fs, &sf)
			fs.BoolVar(&noSystem, "no-system", false, "leave the operating system's trust store alone")
			fs.BoolVar(&noNSS, "no-nss", false, "leave the browsers' NSS databases alone")
		},
	}
	verb, done := "trust", "trusted"
	if !install {
		verb, done = "untrust", "no longer trusted"
		c.UsageLine = "certkeeper ca untrust [flags]"
		c.Short = "remove the local CA from this machine's trust stores"
		c.Long = `Untrust removes what certkeeper ca trust installed: the local CA's root leaves the system
trust store and the NSS databases of your browsers. A root that is not installed is no error.

	sudo certkeeper ca untrust`
	}
	c.Run = func(ctx context.Context, env *Env, args []string) error {
		if noSystem && noNSS {
			return usagef("--no-system and --no-nss together leave nothing to do")
		}
		st, closeStorage, err := sf.open(ctx, env)
		if err != nil {
			return err
		}
		defer closeStorage()
		ca := &localca.CA{Storage: st, Logger: env.Logger}
		root, err := ca.Root(ctx)
		if err != nil {
			return fmt.Errorf("local CA in %s: %w", sf.where(), err)
		}
		o := truststore.Options{SkipSystem: noSystem, SkipNSS: noNSS}
		apply := truststore.Trust
		if !install {
			apply = truststore.Untrust
		}
		results, err := apply(ctx, root, o)
		truststore.WriteDone(env.Stdout, root, done, results)
		if err != nil {
			return fmt.Errorf("ca %s: %w", verb, err)
		}
		return nil
	}
	return c
}
