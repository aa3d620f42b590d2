package certkeeper_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// notifierOnly hides redisstore's storage.KeyWatcher: a node subscribed
// to every notice, as before notices were narrowed.
type notifierOnly struct{ storage.Storage }

func (s notifierOnly) Notify(ctx context.Context, key string) error {
	return s.Storage.(storage.Notifier).Notify(ctx, key)
}

func (s notifierOnly) Subscribe(ctx context.Context) (<-chan string, error) {
	return s.Storage.(storage.Notifier).Subscribe(ctx)
}

// TestClusterNoticesOnlyForHeld: two nodes on one Redis; node A holds 10
// names, node B changes 1,000 other names and one of A's. A receives the
// notice of its own name (and swaps the new certificate in at once, the
// periodic check being off) and not the 1,000 others: what a node receives
// grows with what it holds, not with what the cluster holds (issue 16). A
// node that subscribes to every notice receives all 1,001, which is what
// the count measures.
func TestClusterNoticesOnlyForHeld(t *testing.T) {
	rs := testsvc.Redis(t)
	for _, tt := range []struct {
		name     string
		narrowed bool
	}{{"watched keys", true}, {"every notice", false}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			url := "redis://" + rs.Addr() + "/0?prefix=" + fmt.Sprintf("notices%v:", tt.narrowed)
			open := func() *redisstore.Store {
				st, err := redisstore.Open(url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { st.Close() })
				return st
			}
			stA, stB := open(), open()
			var sa storage.Storage = stA
			if !tt.narrowed {
				sa = notifierOnly{stA}
			}
			a := &certkeeper.Manager{Storage: sa, Issuers: []issuer.Issuer{&localca.CA{Storage: sa}},
				Policy: policy.Allowlist("*.notice.test")}
			a.Cluster.SyncInterval = -1 // notices only
			t.Cleanup(func() { a.Close() })
			name := func(i int) string { return fmt.Sprintf("h%d.notice.test", i) }
			for i := range 10 {
				if _, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: name(i)}); err != nil {
					t.Fatal(err)
				}
			}
			keys, err := stA.List(ctx, storage.CertificatePrefix(""))
			if err != nil || len(keys) != 10 {
				t.Fatalf("List = %d keys, %v; want 10", len(keys), err)
			}
			heldKey := keys[3]
			// A's subscription is live once a notice reaches it.
			for deadline := time.Now().Add(10 * time.Second); certkeeper.NoticesReceived(a) == 0; {
				if err := stB.Notify(ctx, keys[0]); err != nil {
					t.Fatal(err)
				}
				if time.Now().After(deadline) {
					t.Fatal("node A received no notice within 10 s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			before := certkeeper.NoticesReceived(a)

			// Node B: 1,000 changes of names A does not hold, then a
			// renewal of one of A's (a newer certificate under its key).
			for i := range 1000 {
				k, err := storage.CertificateKey("local", fmt.Sprintf("other%d.notice.test", i))
				if err != nil {
					t.Fatal(err)
				}
				if err := stB.Notify(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			data, err := stA.Load(ctx, heldKey)
			if err != nil {
				t.Fatal(err)
			}
			held, err := storage.UnmarshalCertificate(heldKey, data)
			if err != nil {
				t.Fatal(err)
			}
			renewed := renewedElsewhere(ctx, t, held.Names[0], heldKey)
			if err := stB.Store(ctx, heldKey, renewed); err != nil {
				t.Fatal(err)
			}
			if err := stB.Notify(ctx, heldKey); err != nil {
				t.Fatal(err)
			}
			rec, err := storage.UnmarshalCertificate(heldKey, renewed)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := rec.Leaf()
			for deadline := time.Now().Add(5 * time.Second); ; {
				c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: rec.Names[0]})
				if err != nil {
					t.Fatal(err)
				}
				if c.Leaf.SerialNumber.Cmp(want.SerialNumber) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node A still serves serial %s for %s 5 s after B's renewal, want %s", c.Leaf.SerialNumber, rec.Names[0], want.SerialNumber)
				}
				time.Sleep(20 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // the last of any notices
			got := certkeeper.NoticesReceived(a) - before
			t.Logf("node A (%s) received %d notices for B's 1,001 changes", tt.name, got)
			if tt.narrowed && got > 3 {
				t.Errorf("node A, holding 10 names, received %d notices for 1,000 changes of other names and 1 of its own; want ≤ 3", got)
			}
			if !tt.narrowed && got < 1001 {
				t.Errorf("a node subscribed to every notice received %d, want 1,001: the count does not measure what it receives", got)
			}
		})
	}
}

// renewedElsewhere returns a record for name under key, issued by another
// Manager (on a storage of its own) after the one stored: what another
// node's renewal stores.
func renewedElsewhere(ctx context.Context, t *testing.T, name, key string) []byte {
	t.Helper()
	other := filestore.New(t.TempDir())
	if err := localManager(t, other, policy.Allowlist(name)).Cert(ctx, name); err != nil {
		t.Fatal(err)
	}
	data, err := other.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
