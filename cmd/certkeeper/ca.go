package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/certkeeper/certkeeper/issuer/localca"
)

func caCmd() *Command {
	return &Command{
		UsageLine: "certkeeper ca COMMAND [flags]",
		Short:     "manage certkeeper's local CA",
		Long: `certkeeper's local CA issues certificates with no network, for intranets and development
(--ca local). Its root and intermediate are kept in --storage and created on first use.`,
		Commands: []*Command{caRootCmd()},
	}
}

func caRootCmd() *Command {
	var sf storageFlags
	return &Command{
		UsageLine: "certkeeper ca root [flags]",
		Short:     "print the local CA's root certificate (PEM)",
		Long: `Root prints the local CA's root certificate as PEM, creating the CA if it does not
exist yet. Give it to the clients that should trust certificates from --ca local:

	certkeeper ca root > certkeeper-root.pem
	openssl verify -CAfile certkeeper-root.pem -untrusted certs/localhost.pem certs/localhost.pem
	curl --cacert certkeeper-root.pem https://localhost:8443/

On Debian, to trust it system-wide:

	certkeeper ca root > /usr/local/share/ca-certificates/certkeeper.crt && update-ca-certificates`,
		Flags: func(fs *flag.FlagSet) {
			sf.register(fs)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("ca root takes no arguments")
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			ca := &localca.CA{Storage: st}
			pem, err := ca.RootPEM(ctx)
			if err != nil {
				return fmt.Errorf("local CA in %s: %w", sf.where(), err)
			}
			_, err = env.Stdout.Write(pem)
			return err
		},
	}
}
