package policy

import (
	"fmt"
	"testing"
)

func TestLRU(t *testing.T) {
	var c lru[string, int]
	c.init(3)
	c.put("a", 1)
	c.put("b", 2)
	c.put("c", 3)
	if v, ok := c.get("a"); !ok || v != 1 { // a is now the most recent
		t.Fatalf("get(a) = %v, %v, want 1, true", v, ok)
	}
	c.put("d", 4) // evicts b, the least recently used
	c.put("c", 30)
	tests := []struct {
		key  string
		want int
		ok   bool
	}{
		{"a", 1, true},
		{"b", 0, false},
		{"c", 30, true},
		{"d", 4, true},
	}
	for _, tt := range tests {
		if v, ok := c.get(tt.key); v != tt.want || ok != tt.ok {
			t.Errorf("get(%q) = %v, %v, want %v, %v", tt.key, v, ok, tt.want, tt.ok)
		}
	}
	c.remove("c")
	c.remove("absent")
	if _, ok := c.get("c"); ok || c.len() != 2 {
		t.Errorf("after remove(c): len %d, c present %v, want 2, false", c.len(), ok)
	}
}

func TestLRUBounded(t *testing.T) {
	for _, size := range []int{0, 1, 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var c lru[int, int]
			c.init(size)
			for i := range 1000 {
				c.put(i, i)
				if c.len() > max(size, 1) {
					t.Fatalf("len %d after %d puts, want at most %d", c.len(), i+1, max(size, 1))
				}
			}
			// The newest entry is always kept.
			if v, ok := c.get(999); !ok || v != 999 {
				t.Errorf("get(999) = %v, %v, want 999, true", v, ok)
			}
			// The list and the map agree.
			n := 0
			for e := c.root.next; e != &c.root; e = e.next {
				if c.items[e.key] != e {
					t.Fatalf("list entry %v not in the map", e.key)
				}
				n++
			}
			if n != c.len() {
				t.Errorf("list has %d entries, map %d", n, c.len())
			}
		})
	}
}
