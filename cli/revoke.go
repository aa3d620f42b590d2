package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
)

func certRevokeCmd() *Command {
	var certFile, keyFile, reason string
	var cf caFlags
	var sf storageFlags
	return &Command{
		UsageLine: "certkeeper cert revoke --cert FILE [flags]",
		Short:     "revoke a certificate",
		Long: `Revoke asks the CA to revoke a certificate. The request is signed by the ACME account in
--storage that ordered it, or, with --key, by the certificate's own private key (no account
needed: the way to revoke a certificate whose key has leaked).

	certkeeper cert revoke --cert /etc/ssl/certs/a.example.pem --reason superseded
	certkeeper cert revoke --cert a.pem --key a.key --reason keyCompromise

Reasons (RFC 5280): ` + acmeca.RevocationReasons() + `,
in any case, or by number (certbot's and lego's spellings). A certificate of an --out-dir pair is
noted as revoked in its renewal settings: the next cert renew replaces it, with a new key after
keyCompromise.`,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&certFile, "cert", "", "PEM `FILE` of the certificate (a chain file is fine: its first certificate is revoked)")
			fs.StringVar(&keyFile, "key", "", "sign with this private key `FILE` of the certificate instead of the account")
			fs.StringVar(&reason, "reason", "unspecified", "revocation `REASON`")
			cf.register(fs, caEmail)
			cmdline.Bind(fs, &sf)
		},
		ArgsHint:  "the certificate goes with --cert FILE",
		Spellings: otherTools,
		Run: func(ctx context.Context, env *Env, args []string) error {
			if certFile == "" {
				return usagef("--cert is required")
			}
			if cf.local() {
				return usagef("--ca local: the local CA publishes no revocation, and its certificates live 7 days: " +
					"stop serving this one (remove its files) instead")
			}
			code, reasonName, ok := acmeca.RevocationReason(reason)
			if !ok {
				return usagef("--reason %q: use one of %s (any case), or its RFC 5280 code", reason, acmeca.RevocationReasons())
			}
			cert, err := readCertFile(certFile)
			if err != nil {
				return err
			}
			var key crypto.Signer
			if keyFile != "" {
				data, err := os.ReadFile(keyFile)
				if err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				if key, err = storage.ParsePrivateKeyPEM(data); err != nil {
					return fmt.Errorf("--key %s: %w", keyFile, err)
				}
			}
			st, closeStorage, err := sf.open(ctx, env)
			if err != nil {
				return err
			}
			defer closeStorage()
			iss, err := cf.acmeIssuer(env, cf.ca(), st)
			if err != nil {
				return err
			}
			if err := iss.Revoke(ctx, cert, key, code); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "revoked %s (serial %s, reason %s)\n", strings.Join(cert.DNSNames, ","), cert.SerialNumber.Text(16), reasonName)
			// A pair of an --out-dir: the next cert renew replaces it.
			marked, err := renew.MarkRevoked(certFile, reasonName)
			if err != nil {
				return fmt.Errorf("revoked, but its renewal settings could not say so (replace it with cert renew --force --new-key): %w", err)
			}
			if marked {
				fmt.Fprintf(env.Stderr, "certkeeper: the next cert renew replaces it (with a new key after keyCompromise): run it now to serve a valid certificate\n")
				return nil
			}
			if code == 1 { // keyCompromise
				fmt.Fprintf(env.Stderr, "certkeeper: the key of this certificate is compromised: do not use it again; replace the certificate with a new key (cert renew --force --new-key, or cert issue)\n")
			}
			return nil
		},
	}
}

// readCertFile reads the first certificate of the --cert PEM file.
func readCertFile(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--cert: %w", err)
	}
	c, err := certfile.ParseFirstCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("--cert %s: %w", file, err)
	}
	return c, nil
}
