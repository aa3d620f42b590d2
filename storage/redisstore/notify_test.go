package redisstore_test

import (
	"fmt"
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

// TestWatchKeys: a subscriber that watches 10 keys receives the notices of
// those keys only — not the 1,000 notices of keys another Store changes
// elsewhere — and none for a key once it has unwatched it; on a
// standalone server and on a Cluster (issue 16).
func TestWatchKeys(t *testing.T) {
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
			url := tt.url(t) + newPrefix()
			open := func() *redisstore.Store {
				s, err := redisstore.Open(url)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			pub, sub := open(), open()
			ch, w, err := sub.WatchKeys(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			held := func(i int) string { return fmt.Sprintf("certificates/x/held%d.test.json", i) }
			for i := range 10 {
				w.Watch(held(i))
			}
			// The watch is applied in the background: notify the first
			// held key until its notice arrives.
			deadline := time.After(10 * time.Second)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for got := false; !got; {
				if err := pub.Notify(t.Context(), held(0)); err != nil {
					t.Fatal(err)
				}
				select {
				case key := <-ch:
					if key != held(0) {
						t.Fatalf("notice for %q, want %s", key, held(0))
					}
					got = true
				case <-tick.C:
				case <-deadline:
					t.Fatal("no notice within 10 s")
				}
			}
			drain := func() []string {
				var keys []string
				for {
					select {
					case key := <-ch:
						keys = append(keys, key)
					case <-time.After(300 * time.Millisecond):
						return keys
					}
				}
			}
			drain() // repeats of the first notice
			for i := range 1000 {
				if err := pub.Notify(t.Context(), fmt.Sprintf("certificates/x/other%d.test.json", i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := pub.Notify(t.Context(), held(7)); err != nil {
				t.Fatal(err)
			}
			if got := drain(); len(got) != 1 || got[0] != held(7) {
				t.Errorf("after 1,000 notices of other keys and one of %s, received %d: %.5q; want only %s", held(7), len(got), got, held(7))
			}
			w.Unwatch(held(7))
			time.Sleep(200 * time.Millisecond) // applied in the background
			if err := pub.Notify(t.Context(), held(7)); err != nil {
				t.Fatal(err)
			}
			if err := pub.Notify(t.Context(), held(8)); err != nil {
				t.Fatal(err)
			}
			if got := drain(); len(got) != 1 || got[0] != held(8) {
				t.Errorf("after unwatching %s, received %q; want only %s", held(7), got, held(8))
			}
		})
	}
}
