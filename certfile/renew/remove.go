package renew

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/internal/regularfile"
	"github.com/certkeeper/certkeeper/storage"
)

// Remove takes the certificate whose files are named for name out of dir,
// so that Run no longer renews it (certbot's delete): its certificate file
// first (without it there is no pair to renew, should Remove be cut short),
// then its key, the previous certificate kept at renewals, its renewal
// settings and its deploy marker; and, when st is not nil, the copy of
// that very certificate st holds (the one cert issue kept, which status
// would otherwise report expiring one day), not a newer one a Manager on st
// stored since. It returns what it removed (files, and storage keys), and
// an error wrapping fs.ErrNotExist when dir holds no certificate file of
// that name. The certificate stays valid at its CA until it expires:
// revoke it first if its key has leaked.
func Remove(ctx context.Context, dir certfile.Dir, name string, st storage.Storage) ([]string, error) {
	p, err := dir.Paths(name)
	if err != nil {
		return nil, err
	}
	certPEM, err := regularfile.Read(p.Cert, certfile.MaxFileSize)
	if err != nil {
		return nil, fmt.Errorf("no certificate %s in %s: %w", name, dir, err)
	}
	base := p.Base()
	var removed []string
	if leaf, err := certfile.ParseFirstCertificate(certPEM); err == nil && st != nil {
		if key := storedKey(ctx, st, &certfile.Pair{Base: base, Chain: []*x509.Certificate{leaf}}); key != "" {
			if err := st.Delete(ctx, key); err != nil {
				return nil, fmt.Errorf("removing the stored copy of %s: %w", name, err)
			}
			removed = append(removed, key)
		}
	}
	for _, f := range []string{p.Cert, p.Key, p.Cert + ".old", settingsPathBase(dir, base), deployPendingPath(dir, base)} {
		switch err := os.Remove(f); {
		case err == nil:
			removed = append(removed, f)
		case !errors.Is(err, fs.ErrNotExist):
			return removed, fmt.Errorf("removing the certificate %s from %s: %w", name, dir, err)
		}
	}
	return removed, nil
}
