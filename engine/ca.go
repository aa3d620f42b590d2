package engine

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// CANames are the CA names CAURL knows besides directory URLs; "local"
// is certkeeper's own CA (package localca).
var CANames = []string{"letsencrypt", "staging", "local", "production", "letsencrypt-staging"}

// CAURL resolves a CA name to its ACME directory URL: "" (the default),
// letsencrypt and production are Let's Encrypt, staging and
// letsencrypt-staging its staging CA; anything else is returned as it is.
func CAURL(name string) string {
	switch strings.ToLower(name) {
	case "", "letsencrypt", "production":
		return acmeca.LetsEncrypt
	case "staging", "letsencrypt-staging":
		return acmeca.LetsEncryptStaging
	}
	return name
}

// CheckCA checks a CA: one of CANames or an http(s) URL. An unknown name
// is refused at start rather than taken for a URL that fails at the first
// handshake; the error suggests the nearest name.
func CheckCA(name string) error {
	if slices.Contains(CANames, strings.ToLower(name)) {
		return nil
	}
	if u, err := url.Parse(name); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return nil
	}
	msg := fmt.Sprintf("%q is not a CA: give an ACME directory URL (https://...), letsencrypt, staging or local", name)
	if s := cmdline.Suggest(strings.ToLower(name), CANames); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	} else if u, err := url.Parse("https://" + name); !strings.Contains(name, "://") && err == nil && strings.ContainsAny(u.Host, ".:") {
		msg += fmt.Sprintf("; did you mean https://%s?", name)
	}
	return errors.New(msg)
}

// ErrNoRoots is CAHTTPClient's error for roots that hold no PEM
// certificate.
var ErrNoRoots = errors.New("no PEM certificates found")

// CAHTTPClient is the HTTP client for talking to a CA: the system roots
// (SSL_CERT_FILE and SSL_CERT_DIR work as usual) plus the PEM certificates
// in roots, if any are given; a response header must come within 30 s and
// a request end within 60 s.
func CAHTTPClient(roots []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	if roots != nil {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(roots) {
			return nil, ErrNoRoots
		}
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// Account is what every ACME CA of a chain is used with. The zero value
// registers an account with no contact, orders the CA's default profile
// and uses acmeca's default HTTP client.
type Account struct {
	// Email is the account's contact; it also names the account in
	// storage.
	Email string
	// Profile is the ACME profile to order; empty means the CA's default.
	Profile string
	// EAB binds the account to one at the CA, for CAs that require it.
	EAB *acme.EAB
	// HTTPClient talks to the CA (CAHTTPClient makes one); nil means
	// acmeca's default.
	HTTPClient *http.Client
	// UserAgent is appended to the User-Agent of ACME requests.
	UserAgent string
	// Logger receives the issuers' logs; nil means slog.Default().
	Logger *slog.Logger
}

// ACME is the ACME issuer of CA ca (a name CAURL resolves, or a directory
// URL) with a's account; the caller adds solvers.
func (a Account) ACME(ca string, st storage.Storage) *acmeca.Issuer {
	return &acmeca.Issuer{
		DirectoryURL: CAURL(ca), Email: a.Email, Storage: st, Profile: a.Profile,
		HTTPClient: a.HTTPClient, UserAgent: a.UserAgent, Logger: a.Logger, EAB: a.EAB,
	}
}

// Issuer is the issuer of CA ca: certkeeper's own CA (localca) for
// "local", else ACME's.
func (a Account) Issuer(ca string, st storage.Storage) issuer.Issuer {
	if IsLocal(ca) {
		return &localca.CA{Storage: st, Logger: a.Logger}
	}
	return a.ACME(ca, st)
}

// IsLocal reports whether the CA name ca is certkeeper's own CA.
func IsLocal(ca string) bool { return strings.EqualFold(ca, "local") }
