package certkeeper

import (
	"fmt"
	"testing"
	"time"
)

// TestAnnouncedBounded: a node remembers at most maxAnnounced announced
// challenges, makes room by dropping expired ones, forgets one once it
// expires, and reads an unannounced one only within the lookup bound.
func TestAnnouncedBounded(t *testing.T) {
	var c clusterState
	now := time.Now()
	for i := range maxAnnounced + 10 {
		c.announce(fmt.Sprintf("challenges/http-01/t%d.json", i), now)
	}
	if n := len(c.announced); n != maxAnnounced {
		t.Fatalf("%d challenges remembered, want at most %d", n, maxAnnounced)
	}
	later := now.Add(challengeTTL + time.Second)
	c.announce("challenges/http-01/new.json", later) // the expired ones make room
	if n := len(c.announced); n != 1 {
		t.Errorf("%d challenges remembered after all but one expired, want 1", n)
	}
	if !c.mayLoad("challenges/http-01/new.json", later) {
		t.Error("an announced challenge may not be read")
	}
	c.announce("challenges/http-01/old.json", now)
	for range challengeLookupBurst { // spend the bound
		c.mayLoad("challenges/http-01/made-up.json", later)
	}
	if c.mayLoad("challenges/http-01/old.json", later) {
		t.Error("an expired announcement still allows a read past the bound")
	}
	if _, ok := c.announced["challenges/http-01/old.json"]; ok {
		t.Error("an expired announcement is kept after it was looked up")
	}
	if !c.mayLoad("challenges/http-01/new.json", later) {
		t.Error("an announced challenge may not be read once the bound is spent")
	}
}
