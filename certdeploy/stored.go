package certdeploy

import (
	"context"
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
