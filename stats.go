package certkeeper

import (
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/certkeeper/certkeeper/status"
)

// stats are the Manager's handshake counters. The hot path only adds to
// them (an atomic add: no lock, no allocation); collectors read them at
// scrape time through Stats.
type stats struct {
	memory  shardedCounter                // handshakes served from memory
	storage atomic.Uint64                 // slow-path flights served from storage
	issued  atomic.Uint64                 // slow-path flights that obtained a certificate
	events  [len(kindNames)]atomic.Uint64 // events emitted, by kind (emit)

	failMu  sync.Mutex                // guards failing
	failing map[string]status.Failure // the stored failures, as last read or written (failures.go)
}

// counterShards is how many cache lines a hot counter is spread over.
const counterShards = 16

// shardedCounter is a counter that cores can add to without fighting over
// one cache line: a single atomic counter bumped by every handshake made
// the cached-handshake benchmark three times slower on two cores.
type shardedCounter struct {
	shards [counterShards]struct {
		n atomic.Uint64
		_ [56]byte // pad to a 64-byte cache line
	}
}

// Add adds one. The shard is picked by the address of the caller's stack:
// goroutines run on distinct stacks (at least 8 KiB apart), so concurrent
// handshakes mostly land on distinct lines. Where the stack is does not
// matter for correctness, only for contention.
func (c *shardedCounter) Add(n uint64) {
	var marker byte
	i := (uintptr(unsafe.Pointer(&marker)) >> 13) % counterShards
	c.shards[i].n.Add(n)
}

// Load returns the sum of the shards.
func (c *shardedCounter) Load() uint64 {
	var sum uint64
	for i := range c.shards {
		sum += c.shards[i].n.Load()
	}
	return sum
}

// Stats is a snapshot of a Manager's counters and of the certificates it
// manages, for metrics collectors (package metrics). Taking one locks
// what the renewal scheduler and the cache share for a moment; it never
// touches a handshake.
type Stats struct {
	// HandshakesMemory counts handshakes served from memory.
	HandshakesMemory uint64
	// HandshakesStorage counts certificates a handshake loaded from
	// storage. Concurrent handshakes that share one load count once.
	HandshakesStorage uint64
	// HandshakesIssued counts certificates a handshake obtained on demand.
	// Concurrent handshakes that share one issuance count once.
	HandshakesIssued uint64
	// Cached is the number of certificates held in memory, in the cache
	// CacheSize bounds (CertFiles' certificates are not counted).
	Cached int
	// Certificates are the certificates held in memory (at most
	// CacheSize of each key type), by storage key. Certificates that are
	// only in storage are renewed too, but not listed here.
	Certificates []CertStats
	// CertFiles are the certificates served from CertFiles (Key "file:"
	// and the certificate's path, Issuer "file"), in the order given:
	// served and never renewed, so apart from Certificates.
	CertFiles []CertStats
	// Failures are the failing certificates (by storage key) and the
	// names whose first issuance is failing (by status.FailingKey), as
	// this Manager last read or wrote them in storage: the same entries
	// "certkeeper status" shows as failing.
	Failures map[string]status.Failure
	// Events counts the events this Manager emitted since it started, by
	// kind (certificates Obtained and Renewed, RenewalFailed attempts,
	// Denied handshakes, ...), whether or not anything listens to them
	// (OnEvent, Watch). Kinds that never happened are left out.
	Events map[EventKind]uint64
}

// CertStats describes one managed certificate.
type CertStats struct {
	Key       string    // storage key
	Names     []string  // names[0] is the primary name
	Issuer    string    // issuer ID
	NotBefore time.Time // start of the certificate in memory's validity
	NotAfter  time.Time // expiry of the certificate in memory
	OnDemand  bool      // obtained at a handshake rather than through Cert
	Failures  int       // consecutive failed renewal attempts
	// RenewAt is the renewal scheduler's next look at the certificate:
	// when it is due, or the next check of the CA's renewal window, or
	// the next attempt after a failure. Zero if none is scheduled.
	RenewAt time.Time
}

// Stats returns a snapshot of the Manager's counters and certificates.
func (m *Manager) Stats() Stats {
	if err := m.init(); err != nil {
		return Stats{}
	}
	s := Stats{
		HandshakesMemory:  m.stats.memory.Load(),
		HandshakesStorage: m.stats.storage.Load(),
		HandshakesIssued:  m.stats.issued.Load(),
		Cached:            m.cache.len() + m.rsaCache.len(),
	}
	m.renew.mu.Lock()
	for key, e := range m.renew.held {
		c := CertStats{Key: key, Names: e.names, Issuer: e.issuer, OnDemand: e.onDemand, Failures: m.renew.attempts[key]}
		if tc := e.cert.Load(); tc != nil && tc.Leaf != nil {
			c.NotBefore, c.NotAfter = tc.Leaf.NotBefore, tc.Leaf.NotAfter
		}
		s.Certificates = append(s.Certificates, c)
	}
	m.renew.mu.Unlock()
	if sch := m.scheduler(); sch != nil {
		for i := range s.Certificates {
			s.Certificates[i].RenewAt, _ = sch.When(s.Certificates[i].Key)
		}
	}
	for k := range m.stats.events {
		if n := m.stats.events[k].Load(); n > 0 {
			if s.Events == nil {
				s.Events = make(map[EventKind]uint64)
			}
			s.Events[EventKind(k)] = n
		}
	}
	for _, c := range m.StatusOfCertFiles(time.Now()) {
		s.CertFiles = append(s.CertFiles, CertStats{Key: c.Key, Names: c.Names, Issuer: c.Issuer, NotBefore: c.NotBefore, NotAfter: c.NotAfter})
	}
	m.stats.failMu.Lock()
	s.Failures = maps.Clone(m.stats.failing)
	m.stats.failMu.Unlock()
	sort.Slice(s.Certificates, func(i, j int) bool { return s.Certificates[i].Key < s.Certificates[j].Key })
	return s
}
