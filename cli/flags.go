package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/cmdline"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// stringsFlag is a repeatable string flag.
type stringsFlag = cmdline.Strings

// durationFlag is a flag.Value for a duration that also takes days (7d).
type durationFlag = cmdline.Duration

// parseDuration parses a duration that may be given in days (7d, 1d12h).
func parseDuration(s string) (time.Duration, error) { return cmdline.ParseDuration(s) }

// flagName is how help writes a flag: -d, --storage.
func flagName(name string) string { return cmdline.FlagName(name) }

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

// caNames are the --ca shorthands caURL knows.
var caNames = []string{"letsencrypt", "staging", "local", "production", "letsencrypt-staging"}

// checkCA checks a --ca value: a shorthand or an http(s) URL. An unknown
// name is refused at start rather than taken for a URL that fails at the
// first handshake.
func checkCA(v string) error {
	if slices.Contains(caNames, strings.ToLower(v)) {
		return nil
	}
	if u, err := url.Parse(v); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return nil
	}
	msg := fmt.Sprintf("%q is not a CA: give an ACME directory URL (https://...), letsencrypt, staging or local", v)
	if s := cmdline.Suggest(strings.ToLower(v), caNames); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	}
	return errors.New(msg)
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
