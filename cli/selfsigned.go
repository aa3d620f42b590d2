package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/selfsigned"
)

func selfSignedCmd() *Command {
	var names cmdline.Names
	validFor := 365 * 24 * time.Hour
	var certOut, keyOut, outDir, keyType string
	return &Command{
		UsageLine: "certkeeper selfsigned -d NAME [-d NAME...] [flags]",
		Short:     "make a self-signed certificate (e.g. nginx's fallback certificate)",
		Flags: func(fs *flag.FlagSet) {
			fs.Var(&names, "d", "`NAME` (or IP address) for the certificate; repeatable")
			fs.Var((*cmdline.Duration)(&validFor), "valid-for", "how long the certificate is valid: a `DURATION` such as 365d or 36h")
			fs.Lookup("valid-for").DefValue = "365d"
			cmdline.Deprecated(fs, "days", "valid-for", daysToDuration)
			fs.StringVar(&certOut, "cert-out", "", "write the certificate (PEM) to `FILE`")
			fs.StringVar(&keyOut, "key-out", "", "write the private key (PEM, mode 0600) to `FILE`")
			fs.StringVar(&outDir, "out-dir", "", "write OUT-DIR/certs/NAME.pem and OUT-DIR/private/NAME.key (`DIR`)")
			fs.StringVar(&keyType, "key-type", "", "key `TYPE` (default ecdsa-p256)")
		},
		ArgsHint: "names go with -d",
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(names) == 0 {
				return usagef("give at least one name with -d")
			}
			if validFor < time.Hour {
				return usagef("--valid-for %s: must be at least 1h", validFor)
			}
			if (outDir == "") == (certOut == "" && keyOut == "") || (outDir == "" && (certOut == "" || keyOut == "")) {
				return usagef("give --cert-out and --key-out, or --out-dir")
			}
			norm, err := normalizeNames("-d", names)
			if err != nil {
				return err
			}
			kt, err := issuer.ParseKeyType(keyType)
			if err != nil {
				return usagef("--key-type: %v", err)
			}
			chainPEM, keyPEM, err := selfsigned.KeyPair(kt, norm, validFor)
			if err != nil {
				return err
			}
			if outDir != "" {
				p, err := certfile.Dir(outDir).Write(norm[0], keyPEM, chainPEM)
				if err != nil {
					return err
				}
				fmt.Fprintf(env.Stdout, "%s %s\n", p.Cert, p.Key)
				return nil
			}
			if err := certfile.WriteFile(keyOut, keyPEM, 0o600); err != nil {
				return fmt.Errorf("--key-out: %w", err)
			}
			if err := certfile.WriteFile(certOut, chainPEM, 0o644); err != nil {
				return fmt.Errorf("--cert-out: %w", err)
			}
			fmt.Fprintf(env.Stdout, "%s %s\n", certOut, keyOut)
			return nil
		},
	}
}
