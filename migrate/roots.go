package migrate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"

	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
)

// ErrNoRoots is the error of TrustedRoots when its extra PEM holds no
// certificate.
var ErrNoRoots = errors.New("no PEM certificates found")

// TrustedRoots returns the roots imported chains are verified against
// (Options.Roots), as `certkeeper import` builds them: the system's roots,
// the PEM certificates of extraPEM (a private CA's root; nil for none,
// and ErrNoRoots if it holds none), and the root of the local CA kept in st,
// if st holds one, so that certificates the local CA issued import too.
func TrustedRoots(ctx context.Context, st storage.Storage, extraPEM []byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if extraPEM != nil && !pool.AppendCertsFromPEM(extraPEM) {
		return nil, ErrNoRoots
	}
	root, err := (&localca.CA{Storage: st}).StoredRoot(ctx)
	switch {
	case err == nil:
		pool.AddCert(root)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("reading the local CA's root to verify imported chains: %w", err)
	}
	return pool, nil
}
