package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }

func (s *stringsFlag) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// defaultStorageDir is where certkeeper keeps its state when --storage is
// not given: the library's default (certkeeper.DefaultStorageDir).
func defaultStorageDir() string { return certkeeper.DefaultStorageDir() }

// caURL resolves the --ca shorthands.
func caURL(v string) string {
	switch strings.ToLower(v) {
	case "", "letsencrypt", "production":
		return acmeca.LetsEncrypt
	case "staging", "letsencrypt-staging":
		return acmeca.LetsEncryptStaging
	}
	return v
}

// caHTTPClient is the HTTP client for talking to a CA: the system roots
// (SSL_CERT_FILE and SSL_CERT_DIR work as usual) plus the PEM roots in
// rootsFile, if given.
func caHTTPClient(rootsFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	if rootsFile != "" {
		data, err := os.ReadFile(rootsFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-roots: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--ca-roots %s: no PEM certificates found", rootsFile)
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}
