// Package localca is certkeeper's own certificate authority, for intranets,
// development and machines that cannot reach an ACME CA: the "local" issuer
// and the offline default at the end of a fallback chain.
//
// A CA keeps a root (ECDSA P-256, ten years) and an intermediate (ECDSA
// P-256, one year, renewed from the root in the last third of its life) in
// a storage.Storage, creates both on first use, and signs leaf certificates
// with the intermediate. Several processes sharing one Storage share one
// root: creation happens under a Storage lock and is re-checked after it.
// Clients trust the CA by installing its root (Root, RootPEM; the
// `certkeeper ca root` command prints it).
//
// What it does not do: it does not install the root into any trust store,
// publish CRLs, answer OCSP, revoke, or rotate the root. OCSPURL puts a
// responder's address in the leaves for operators who run one (such as
// `openssl ocsp` over an index of the issued certificates). The root is not name
// constrained, so whoever can read the Storage can issue for any name to
// every client that trusts the root: keep the Storage as private as the
// keys it holds. When the root expires, issuance fails with an error that
// says so; delete its key (storage.LocalCAKey("root")) to start a new one,
// and distribute that.
package localca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"log/slog"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

// Lifetimes. The intermediate is short enough that a copy of a stale
// Storage stops issuing within a year, long enough that clients which
// cache intermediates rarely see it change; leaves are renewed by the
// Manager in the last third of their life like any other certificate.
const (
	defaultLifetime   = 7 * 24 * time.Hour
	rootYears         = 10
	interLifetime     = 365 * 24 * time.Hour
	maxLeafLifetime   = interLifetime / 2
	backdate          = time.Minute // tolerate clients whose clocks run behind
	defaultName       = "certkeeper local"
	issuerID          = "local"
	whichRoot         = "root"
	whichIntermediate = "intermediate"
)

// CA is a certificate authority whose keys live in Storage. It implements
// issuer.Issuer with ID "local".
//
// Apart from Storage, the zero value is ready to use. A CA is safe for
// concurrent use; its fields must not change after first use, and a CA
// must not be copied after first use.
type CA struct {
	// Storage holds the root and the intermediate, each with its key,
	// under storage.LocalCAKey("root") and ("intermediate"). Required.
	Storage storage.Storage

	// Lifetime is the validity of the leaves it issues. Zero (or
	// negative) means 7 days; more than 182 days is clamped to 182 days,
	// half the intermediate's lifetime. A leaf never outlives the
	// intermediate that signs it.
	Lifetime time.Duration

	// Name is the organisation and common-name prefix of the root and
	// intermediates it creates: the root is "NAME root 1a2b3c4d". Zero
	// means "certkeeper local". It takes effect only when a root or
	// intermediate is created.
	Name string

	// OCSPURL, if set, is written into every leaf it issues as the OCSP
	// responder to ask (Authority Information Access, RFC 5280 §4.2.2.1),
	// so servers staple its answers. The CA does not run that responder:
	// the operator does, signing with the intermediate (the leaves'
	// issuer). Empty issues leaves without one.
	OCSPURL string

	// Logger receives an Info record when the CA creates a root or an
	// intermediate. Nil means slog.Default(); a Manager whose Issuers hold
	// the CA sets its own Logger here, and its Storage when Storage is nil.
	Logger *slog.Logger

	mu  sync.Mutex // guards cur
	cur *authority // the root and intermediate last loaded; nil before first use
}

// authority is an immutable snapshot of the CA's certificates.
type authority struct {
	root     *x509.Certificate
	inter    *x509.Certificate
	interKey crypto.Signer
	interPEM []byte
}

var _ issuer.Issuer = (*CA)(nil)

// ID returns "local".
func (ca *CA) ID() string { return issuerID }

// Root returns the CA's root certificate, creating the CA on first use.
func (ca *CA) Root(ctx context.Context) (*x509.Certificate, error) {
	a, err := ca.authority(ctx)
	if err != nil {
		return nil, err
	}
	return a.root, nil
}

// StoredRoot returns the root certificate kept in Storage, without
// creating a CA when there is none: then the error satisfies
// errors.Is(err, fs.ErrNotExist). It is for callers that trust the local
// CA only if it exists, such as an import checking chains.
func (ca *CA) StoredRoot(ctx context.Context) (*x509.Certificate, error) {
	root, _, err := ca.readRecord(ctx, whichRoot)
	return root, err
}

// RootPEM returns the root certificate in PEM form, to be installed in
// clients' trust stores. It creates the CA on first use.
func (ca *CA) RootPEM(ctx context.Context) ([]byte, error) {
	root, err := ca.Root(ctx)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), nil
}

func (ca *CA) lifetime() time.Duration {
	switch {
	case ca.Lifetime <= 0:
		return defaultLifetime
	case ca.Lifetime > maxLeafLifetime:
		return maxLeafLifetime
	}
	return ca.Lifetime
}

func (ca *CA) name() string {
	if ca.Name == "" {
		return defaultName
	}
	return ca.Name
}

func (ca *CA) logger() *slog.Logger {
	if ca.Logger == nil {
		return slog.Default()
	}
	return ca.Logger
}

// shortID returns 8 random hex digits, which tell one certkeeper root
// from another in a trust store listing.
func shortID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}
