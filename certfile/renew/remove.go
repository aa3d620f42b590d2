package renew

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/certkeeper/certkeeper/certfile"
)

// Remove takes the certificate whose files are named for name out of dir,
// so that Run no longer renews it (certbot's delete): its certificate file
// first (without it there is no pair to renew, should Remove be cut short),
// then its key, the previous certificate kept at renewals, its renewal
// settings and its deploy marker. It returns the files it removed, and an
// error wrapping fs.ErrNotExist when dir holds no certificate file of that
// name. The certificate stays valid at its CA until it expires: revoke it
// first if its key has leaked.
func Remove(dir certfile.Dir, name string) ([]string, error) {
	p, err := dir.Paths(name)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(p.Cert); err != nil {
		return nil, fmt.Errorf("no certificate %s in %s: %w", name, dir, err)
	}
	base := strings.TrimSuffix(filepath.Base(p.Cert), ".pem")
	var removed []string
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
