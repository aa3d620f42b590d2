package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/certfile/renew"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
)

func certRevokeCmd() *Command {
	var certFile, keyFile, reason, name string
	var cf caFlags
	var sf storageFlags
	var flags *flag.FlagSet
	return &Command{
		UsageLine: "certkeeper cert revoke --cert FILE | -d NAME [flags]",
		Short:     "revoke a certificate",
		Flags: func(fs *flag.FlagSet) {
			flags = fs
			fs.StringVar(&certFile, "cert", "", "PEM `FILE` of the certificate (a chain file is fine: its first certificate is revoked)")
			fs.StringVar(&keyFile, "key", "", "sign with this private key `FILE` of the certificate instead of the account")
			fs.StringVar(&name, "d", "", "revoke the certificate of this `NAME` that a proxy or server keeps in --storage; each one\nrunning on it replaces the certificate (at once on Redis or PostgreSQL, within a minute on a directory)")
			fs.StringVar(&reason, "reason", "unspecified", "revocation `REASON`")
			cf.register(fs, caEmail)
			cmdline.Bind(fs, &sf)
		},
		ArgsHint:  "the certificate goes with --cert FILE, or its name with -d NAME",
		Spellings: otherTools,
		Run: func(ctx context.Context, env *Env, args []string) error {
			if (certFile == "") == (name == "") || name != "" && keyFile != "" {
				return usagef("give --cert FILE (and --key FILE) to revoke a certificate file, or -d NAME for the one kept in --storage")
			}
			if certFile != "" && !cmdline.Given(flags, "ca") { // the CA that issued a pair's, as cert renew finds it
				s, conf, err := renew.PairSettings(certFile)
				if err = errors.Join(err, s.ApplyUnset(flags, append(renew.StorageKeys(), "ca", "ca_roots", "email")...)); err != nil {
					return fmt.Errorf("--cert %s: %w", certFile, err)
				} else if s.CA != "" {
					fmt.Fprintf(env.Stderr, "certkeeper: revoking at %s, the CA of %s (--ca chooses another)\n", s.CA, conf)
				}
			}
			if cf.local() {
				return usagef("--ca local: the local CA publishes no revocation, and its certificates live 7 days: " +
					"stop serving this one (remove its files) instead")
			}
			code, reasonName, ok := acmeca.RevocationReason(reason)
			if !ok {
				return usagef("--reason %q: use one of %s (any case), or its RFC 5280 code", reason, acmeca.RevocationReasons())
			}
			if name != "" {
				return revokeStored(ctx, env, name, reasonName, &cf, &sf)
			}
			cert, err := readCertFile("--cert", certFile)
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
			if _, err := certkeeper.MarkRevoked(ctx, st, iss.ID(), cert, reasonName); err != nil { // a copy cert issue kept, for status and Managers
				fmt.Fprintf(env.Stderr, "certkeeper: revoked, but its copy in --storage could not be marked so: %v\n", err)
			}
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

// readCertFile reads the first certificate of the PEM file flagName gave.
func readCertFile(flagName, file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	c, err := certfile.ParseFirstCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flagName, file, err)
	}
	return c, nil
}

// revokeStored runs "cert revoke -d NAME" (certkeeper.RevokeStored).
func revokeStored(ctx context.Context, env *Env, name, reason string, cf *caFlags, sf *storageFlags) error {
	names, err := normalizeNames("-d", []string{name})
	if err != nil {
		return err
	}
	st, closeStorage, err := sf.open(ctx, env)
	if err != nil {
		return err
	}
	defer closeStorage()
	got, err := certkeeper.RevokeStored(ctx, st, certkeeper.RevokeRequest{Name: names[0], IssuerID: storage.IssuerID(engine.CAURL(cf.ca())), Reason: reason,
		Revoker: func(email string) (certkeeper.Revoker, error) {
			cf.Email = email // the account that ordered it (its record names it), whatever --email says
			return cf.acmeIssuer(env, cf.ca(), st)
		}})
	if nse, ok := errors.AsType[*certkeeper.NotStoredError](err); ok && len(nse.Elsewhere) > 0 {
		return fmt.Errorf("%w: give that --ca (certkeeper status shows each certificate's issuer)", err)
	} else if ok {
		return fmt.Errorf("no certificate of %s in --storage %s: give the --storage of the proxy or server that serves it", names[0], sf.where())
	}
	for _, r := range got {
		fmt.Fprintf(env.Stdout, "revoked %s (%s key, serial %s, reason %s)\n", strings.Join(r.Leaf.DNSNames, ","), issuer.KeyTypeOf(r.Leaf.PublicKey), r.Leaf.SerialNumber.Text(16), reason)
		if r.Replaced {
			fmt.Fprintf(env.Stderr, "certkeeper: %s was renewed meanwhile: the certificate in --storage is already another one\n", r.Key)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "certkeeper: every certkeeper proxy or server using this --storage replaces it with a new key (within a minute; "+
		"at once on Redis or PostgreSQL), as does the next cert renew of an --out-dir holding it; certkeeper status shows the new one\n")
	return nil
}
