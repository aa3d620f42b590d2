package certdeploy

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Stored returns the certificates to deploy from st: for each primary
// name (and variant), the one valid the longest, skipping expired and
// damaged records. With names given, only certificates whose primary
// name is one of them.
func Stored(ctx context.Context, st storage.Storage, names []string) ([]*storage.Certificate, error) {
	now := time.Now()
	best := map[string]*storage.Certificate{}
	var order []string
	err := storage.EachCertificate(ctx, st, nil, func(_ string, _ []byte, c *storage.Certificate, err error) bool {
		if err != nil || now.After(c.NotAfter) {
			return true
		}
		if len(names) > 0 && !slices.Contains(names, c.Names[0]) {
			return true
		}
		id := c.Variant + "/" + c.Names[0]
		if old, ok := best[id]; !ok {
			order = append(order, id)
			best[id] = c
		} else if c.NotAfter.After(old.NotAfter) {
			best[id] = c
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	out := make([]*storage.Certificate, 0, len(order))
	for _, id := range order {
		out = append(out, best[id])
	}
	return out, nil
}

// ErrNothingStored is DeployStored's error when storage holds no valid
// certificate to deploy (with the names asked for).
var ErrNothingStored = errors.New("no valid certificate to deploy")

// DeployStored deploys the certificates Stored returns from st (only
// those of names, if any): what "certkeeper deploy" does. n is how many
// were deployed, changed whether any file changed (Deploy). With none
// stored, nothing is written and the error is ErrNothingStored.
func (d *Deployer) DeployStored(ctx context.Context, st storage.Storage, names []string) (n int, changed bool, err error) {
	certs, err := Stored(ctx, st, names)
	if err != nil {
		return 0, false, err
	}
	if len(certs) == 0 {
		return 0, false, ErrNothingStored
	}
	changed, err = d.Deploy(ctx, certs)
	return len(certs), changed, err
}

// KnownFormat reports whether format is one Deployer writes (Formats).
func KnownFormat(format string) bool { return slices.Contains(Formats(), format) }
