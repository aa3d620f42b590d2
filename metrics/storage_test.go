package metrics_test

import (
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// TestStorageKeepsPowers: the timed storage the Manager gets when
// metrics are on keeps what the wrapped backend can do beyond Storage.
// A Redis node's change notices still reach the other nodes (without them
// a cluster node with --metrics-addr hears of renewals only at its
// periodic check, and of challenges answered elsewhere not at all), and
// filestore still stores challenge answers without fsyncs.
func TestStorageKeepsPowers(t *testing.T) {
	x := metrics.New()
	rs := testsvc.Redis(t)
	a, err := redisstore.Open("redis://" + rs.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := redisstore.Open("redis://" + rs.Addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sender, ok := x.Storage(a).(storage.Notifier)
	if !ok {
		t.Fatal("the timed Redis storage is not a storage.Notifier: its node sends no change notices")
	}
	receiver, ok := x.Storage(b).(storage.Notifier)
	if !ok {
		t.Fatal("the timed Redis storage is not a storage.Notifier: its node hears no change notices")
	}
	ch, err := receiver.Subscribe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const key = "certificates/ca/a.test.json"
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond) // until the subscription is up
	defer tick.Stop()
	for got := ""; got != key; {
		select {
		case got = <-ch:
		case <-tick.C:
			if err := sender.Notify(t.Context(), key); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatal("no notice through the timed storage within 10 s")
		}
	}

	fs := x.Storage(filestore.New(t.TempDir()))
	v, ok := fs.(storage.VolatileStorer)
	if !ok {
		t.Fatal("the timed filestore is not a storage.VolatileStorer: challenge answers cost two fsyncs")
	}
	if err := v.StoreVolatile(t.Context(), "challenges/http-01/tok.json", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := fs.Load(t.Context(), "challenges/http-01/tok.json"); err != nil || string(got) != "x" {
		t.Errorf("Load after StoreVolatile = %q, %v", got, err)
	}
	// A backend without notices: Notify does nothing, Subscribe stays
	// silent (the Manager then relies on its periodic check).
	if err := fs.(storage.Notifier).Notify(t.Context(), key); err != nil {
		t.Errorf("Notify on the timed filestore = %v, want nil", err)
	}
}
