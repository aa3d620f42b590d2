package certkeeper

import (
	"crypto/tls"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// defaultCacheSize bounds the certificates held in memory when
// Manager.CacheSize is zero. A certificate with its parsed leaf costs a few
// KiB, so this is tens of MiB at most; evicted certificates come back from
// storage on their next handshake. What stays of an evicted certificate is
// its storage key, its renewal time and its last-seen time (renew.go,
// housekeeping.go): a few hundred bytes.
const defaultCacheSize = 10_000

// managed is one certificate in memory: what a handshake serves, and what
// renewal needs to know. The certificate pointer is swapped atomically on
// renewal; a *tls.Certificate is never modified once published.
type managed struct {
	cert     atomic.Pointer[tls.Certificate]
	names    []string // normalised, as stored; names[0] is the primary
	issuer   string   // issuer ID it was issued by
	key      string   // storage key of its record
	onDemand bool     // obtained at a handshake rather than through Cert

	used     atomic.Bool  // set on a hit, cleared by the eviction clock
	lastSeen atomic.Int64 // unix seconds of the last handshake, coarse
	left     atomic.Bool  // it left its cache (Manager.released): never held for renewal again
}

// serve returns the certificate and marks the entry used. It takes no lock
// and allocates nothing.
func (e *managed) serve() *tls.Certificate {
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e.cert.Load()
}

// certCache maps names to managed certificates. Reads (get) are lock-free
// and allocation-free: sync.Map's read path is a hash-trie lookup. Writes
// (put, remove) are serialised by mu, which also guards the eviction ring;
// they happen only when a certificate is loaded, issued, renewed or
// evicted, never on a cache hit.
//
// The cache is bounded by entries (certificates, not names) with the CLOCK
// algorithm: a hit sets the entry's used bit; eviction walks the ring in
// insertion order, giving used entries a second chance.
type certCache struct {
	exact sync.Map // name → *managed
	wild  sync.Map // "a.test" → *managed for "*.a.test"

	mu    sync.Mutex // guards ring and size
	ring  []*managed // eviction order
	limit int
}

func newCertCache(limit int) *certCache {
	if limit <= 0 {
		limit = defaultCacheSize
	}
	return &certCache{limit: limit}
}

// get returns the entry serving name: an exact match, else a wildcard for
// its parent domain (one label only, as TLS wildcards match).
func (c *certCache) get(name string) *managed {
	if v, ok := c.exact.Load(name); ok {
		return v.(*managed)
	}
	if i := strings.IndexByte(name, '.'); i > 0 {
		if v, ok := c.wild.Load(name[i+1:]); ok {
			return v.(*managed)
		}
	}
	return nil
}

// put adds e under each of its names, replacing entries for the same names,
// and evicts entries beyond the limit. It returns the entries that left
// the cache, evicted or replaced, so that the caller can drop what else
// refers to them: an entry that left must become garbage, or memory grows
// with every name ever served rather than with the cache.
func (c *certCache) put(e *managed) (left []*managed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range e.names {
		var old any
		var loaded bool
		if parent, ok := strings.CutPrefix(n, "*."); ok {
			old, loaded = c.wild.Swap(parent, e)
		} else {
			old, loaded = c.exact.Swap(n, e)
		}
		if loaded && old.(*managed) != e {
			c.dropLocked(old.(*managed))
			left = append(left, old.(*managed))
		}
	}
	c.ring = append(c.ring, e)
	for len(c.ring) > c.limit {
		victim := c.ring[0]
		c.ring[0] = nil // the backing array must not keep it alive
		c.ring = c.ring[1:]
		if victim.used.Load() {
			victim.used.Store(false)
			c.ring = append(c.ring, victim)
			continue
		}
		c.unmapLocked(victim)
		left = append(left, victim)
	}
	return left
}

// overlay maps e under each of its names, taking them from the entries
// that had them, which keep their other names: CertFiles may overlap (a.test
// and b.test in one pair, b.test and c.test in another), and a pair loaded
// later must not take away an earlier one's other names. It never evicts.
func (c *certCache) overlay(e *managed) { c.mapNames(e, true) }

// fill maps e under those of its names no entry has (see overlay).
func (c *certCache) fill(e *managed) { c.mapNames(e, false) }

// mapNames maps e under its names: every one, adding e to the ring
// (overlay), or only those no entry has (fill).
func (c *certCache) mapNames(e *managed, every bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range e.names {
		m, key := &c.exact, n
		if parent, ok := strings.CutPrefix(n, "*."); ok {
			m, key = &c.wild, parent
		}
		if every {
			m.Store(key, e)
		} else {
			m.LoadOrStore(key, e)
		}
	}
	if every {
		c.ring = append(c.ring, e)
	}
}

// remove drops e from the cache.
func (c *certCache) remove(e *managed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(e)
}

// dropLocked removes old from the ring and unmaps those of its names that
// still point to it (names already taken over by another entry stay).
func (c *certCache) dropLocked(old *managed) {
	for i, r := range c.ring {
		if r == old {
			c.ring = slices.Delete(c.ring, i, i+1) // clears the vacated slot
			break
		}
	}
	c.unmapLocked(old)
}

func (c *certCache) unmapLocked(e *managed) {
	for _, n := range e.names {
		if parent, ok := strings.CutPrefix(n, "*."); ok {
			c.wild.CompareAndDelete(parent, e)
		} else {
			c.exact.CompareAndDelete(n, e)
		}
	}
}

// len is the number of certificates held.
func (c *certCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ring)
}

// all returns a snapshot of the held certificates.
func (c *certCache) all() []*managed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*managed(nil), c.ring...)
}

// touch records a handshake for e at a coarse (one second) resolution, so
// the hot path writes shared memory at most once a second per entry.
func (e *managed) touch(now time.Time) {
	s := now.Unix()
	if e.lastSeen.Load() != s {
		e.lastSeen.Store(s)
	}
}
