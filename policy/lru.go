package policy

// lru is a map that holds at most max entries and, to make room, drops the
// one used least recently. It is how AskURL's answers and IPLimiter's
// clients stay bounded in memory under a flood of distinct keys: the
// flood evicts its own entries, and memory stays at max entries whatever
// the traffic.
//
// The zero value holds nothing until init is called. An lru is not safe
// for concurrent use; its owner guards it with a mutex.
type lru[K comparable, V any] struct {
	max   int
	items map[K]*lruEntry[K, V]
	// root is a sentinel: root.next is the most recently used entry,
	// root.prev the least. A ring with a sentinel has no nil checks.
	root lruEntry[K, V]
}

type lruEntry[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruEntry[K, V]
}

// init empties c and bounds it to n entries (at least 1).
func (c *lru[K, V]) init(n int) {
	c.max = max(n, 1)
	c.items = make(map[K]*lruEntry[K, V])
	c.root.next, c.root.prev = &c.root, &c.root
}

// get returns the value for k and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.unlink(e)
	c.pushFront(e)
	return e.val, true
}

// put sets the value for k, marks it used, and drops the least recently
// used entry if c then holds more than max.
func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.items[k]; ok {
		e.val = v
		c.unlink(e)
		c.pushFront(e)
		return
	}
	e := &lruEntry[K, V]{key: k, val: v}
	c.items[k] = e
	c.pushFront(e)
	if len(c.items) > c.max {
		old := c.root.prev
		c.unlink(old)
		delete(c.items, old.key)
	}
}

// remove drops k if present.
func (c *lru[K, V]) remove(k K) {
	if e, ok := c.items[k]; ok {
		c.unlink(e)
		delete(c.items, k)
	}
}

// len returns the number of entries.
func (c *lru[K, V]) len() int { return len(c.items) }

func (c *lru[K, V]) unlink(e *lruEntry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *lru[K, V]) pushFront(e *lruEntry[K, V]) {
	e.prev, e.next = &c.root, c.root.next
	c.root.next.prev = e
	c.root.next = e
}
