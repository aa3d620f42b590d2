package redisstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// TestNotify: a notice published by one Store reaches the subscribers of
// another with the same prefix, and not those of another prefix; on a
// standalone server and on a Cluster.
func TestNotify(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"standalone", func(t *testing.T) string { return "redis://" + testsvc.Redis(t).Addr() + "/0?prefix=" }},
		{"cluster", func(t *testing.T) string {
			return "redis+cluster://" + strings.Join(testsvc.RedisCluster(t, 3).Addrs(), ",") + "/?prefix="
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url(t)
			prefix := newPrefix()
			open := func(prefix string) *redisstore.Store {
				s, err := redisstore.Open(url + prefix)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			pub, sub, other := open(prefix), open(prefix), open(newPrefix())
			ch, err := sub.Subscribe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			och, err := other.Subscribe(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			// A subscription is live once it has seen a notice: publish
			// until one arrives.
			deadline := time.After(10 * time.Second)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for got := false; !got; {
				if err := pub.Notify(t.Context(), "certificates/x/a.test.json"); err != nil {
					t.Fatal(err)
				}
				select {
				case key := <-ch:
					if key != "certificates/x/a.test.json" {
						t.Fatalf("notice for %q, want certificates/x/a.test.json", key)
					}
					got = true
				case <-tick.C:
				case <-deadline:
					t.Fatal("no notice within 10 s")
				}
			}
			select {
			case key := <-och:
				t.Errorf("a Store with another prefix got the notice %q", key)
			case <-time.After(200 * time.Millisecond):
			}
			if err := pub.Notify(t.Context(), "../bad"); err == nil {
				t.Error("Notify of an invalid key succeeded")
			}
		})
	}
}
