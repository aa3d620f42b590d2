package certdeploy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Stored returns the certificates to deploy from st: for each primary
// name (and variant), the one valid the longest, skipping expired and
// damaged records. With names given, only certificates whose primary
// name is one of them.
func Stored(ctx context.Context, st storage.Storage, names []string) ([]*storage.Certificate, error) {
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return nil, fmt.Errorf("listing certificates: %w", err)
	}
	now := time.Now()
	best := map[string]*storage.Certificate{}
	var order []string
	for _, k := range keys {
		data, err := st.Load(ctx, k)
		if err != nil {
			continue // deleted since List
		}
		c, err := storage.UnmarshalCertificate(k, data)
		if err != nil || now.After(c.NotAfter) {
			continue
		}
		if len(names) > 0 && !slices.Contains(names, c.Names[0]) {
			continue
		}
		id := c.Variant + "/" + c.Names[0]
		if old, ok := best[id]; !ok {
			order = append(order, id)
			best[id] = c
		} else if c.NotAfter.After(old.NotAfter) {
			best[id] = c
		}
	}
	out := make([]*storage.Certificate, 0, len(order))
	for _, id := range order {
		out = append(out, best[id])
	}
	return out, nil
}
