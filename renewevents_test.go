package certkeeper_test

import (
	"context"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewalEvents: a renewal is reported by one Renewed event, and the
// renewal's re-check of storage, which finds the certificate being
// renewed, reports no Loaded event: a watcher counting loads from
// storage (or the metric of Loaded events) counted every renewal too.
func TestRenewalEvents(t *testing.T) {
	t.Parallel()
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{
		Storage: st,
		Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 8 * time.Second}},
	}
	defer m.Close()
	events, stop := m.Watch()
	defer stop()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := m.Cert(ctx, "ev.test"); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for {
		select {
		case e := <-events:
			kinds = append(kinds, e.Kind.String())
			if e.Kind != certkeeper.Renewed {
				continue
			}
			for _, k := range kinds {
				if k == "loaded" {
					t.Errorf("events up to the first renewal: %v, want no loaded", kinds)
				}
			}
			return
		case <-ctx.Done():
			t.Fatalf("no renewal within 30 s of an 8 s certificate; events: %v", kinds)
		}
	}
}
