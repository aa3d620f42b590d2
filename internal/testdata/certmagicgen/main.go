// Command certmagicgen obtains certificates with a real CertMagic (the
// library inside Caddy) into a CertMagic file storage, so certkeeper's
// tests can import state that CertMagic itself wrote. It lives in its own
// module so that certkeeper's go.mod does not require CertMagic.
//
//	certmagicgen -ca URL -roots FILE -storage DIR -http-port N -email E -d NAME
package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/certmagic"
)

func main() {
	ca := flag.String("ca", "", "ACME directory URL")
	roots := flag.String("roots", "", "PEM file of roots for the CA's HTTPS endpoint")
	dir := flag.String("storage", "", "CertMagic file storage directory")
	port := flag.Int("http-port", 80, "port to answer http-01 on (127.0.0.1)")
	email := flag.String("email", "", "ACME account email")
	name := flag.String("d", "", "name to obtain a certificate for")
	flag.Parse()
	if err := run(*ca, *roots, *dir, *port, *email, *name); err != nil {
		fmt.Fprintln(os.Stderr, "certmagicgen:", err)
		os.Exit(1)
	}
}

func run(ca, rootsFile, dir string, port int, email, name string) error {
	pem, err := os.ReadFile(rootsFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no roots in %s", rootsFile)
	}
	var cfg *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
	})
	defer cache.Stop()
	cfg = certmagic.New(cache, certmagic.Config{Storage: &certmagic.FileStorage{Path: dir}})
	iss := certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA: ca, Email: email, Agreed: true, TrustedRoots: pool,
		DisableTLSALPNChallenge: true, AltHTTPPort: port, ListenHost: "127.0.0.1",
	})
	cfg.Issuers = []certmagic.Issuer{iss}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return cfg.ObtainCertSync(ctx, name)
}
