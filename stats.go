package certkeeper

import (
	"context"
	"fmt"
	"maps"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"
	"unsafe"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
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
	// Certificates are the certificates the Manager renews, by storage
	// key: those held in memory (InMemory, at most CacheSize of each key
	// type) and those it renews from storage, loaded at start or since
	// evicted (of which it knows the primary name, issuer and dates).
	Certificates []CertStats
	// Damaged counts the stored records this Manager found damaged (its
	// start-up scan could not decode them, a renewal check could not
	// parse them): it does not renew them. "certkeeper status" lists them
	// with the reason. A record replaced, or deleted, stops counting (a
	// deleted one at the next housekeeping round).
	Damaged int
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
	Names     []string  // names[0] is the primary name; the only one of a certificate not InMemory
	Issuer    string    // issuer ID
	NotBefore time.Time // start of the certificate's validity
	NotAfter  time.Time // expiry of the certificate
	OnDemand  bool      // obtained at a handshake rather than through Cert
	InMemory  bool      // held in memory (Stats.Cached counts it), not only in storage
	Failures  int       // consecutive failed renewal attempts
	// Refused marks a certificate due for renewal that is not renewed
	// because the policy no longer allows its name: it is left to expire
	// (a name taken out of the allowlist), and the metrics do not count it
	// among the certificates kept renewed.
	Refused bool
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
	s.Certificates = make([]CertStats, 0, len(m.renew.held)+len(m.renew.stored))
	for key, e := range m.renew.held {
		c := CertStats{Key: key, Names: e.names, Issuer: e.issuer, OnDemand: e.onDemand, InMemory: true, Failures: m.renew.attempts[key]}
		if tc := e.cert.Load(); tc != nil && tc.Leaf != nil {
			c.NotBefore, c.NotAfter = tc.Leaf.NotBefore, tc.Leaf.NotAfter
		}
		s.Certificates = append(s.Certificates, c)
	}
	s.Certificates = m.renew.storedStats(s.Certificates)
	if len(m.renew.refused) > 0 {
		for i := range s.Certificates {
			_, s.Certificates[i].Refused = m.renew.refused[s.Certificates[i].Key]
		}
	}
	s.Damaged = len(m.renew.damaged)
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

// storedDates is what a Manager keeps, for Stats, of a certificate it
// renews, for when it is not in memory: about 60 bytes with the map's
// own, where holding the certificate costs kilobytes. (Without it the
// metrics counted the certificates in memory only: 10,000 of 100,000
// renewed, and an expiring one no handshake had loaded went unseen.) The
// map holds pointers, updated in place: assigning a value replaces the
// map's copy of the key, which would keep an evicted entry's key alive
// beside the scheduler's.
type storedDates struct {
	issuer   unique.Handle[string] // one copy of each issuer ID, however many certificates
	notAfter int64                 // Unix seconds
	lifetime uint32                // seconds from NotBefore to NotAfter
	// The primary name is key[nameAt:nameAt+nameLen], sharing the key's
	// bytes, or, with nameLen 0, renewer.storedNames[key].
	nameAt   uint16
	nameLen  uint8
	onDemand bool
}

// noteLocked records, under r.mu, the primary name, issuer and dates of
// the certificate stored under key.
func (r *renewer) noteLocked(key, name, issuerID string, notBefore, notAfter time.Time, onDemand bool) {
	if r.stored == nil {
		return // the scheduler has not started
	}
	delete(r.damaged, key)
	d := r.stored[key]
	if d == nil {
		d = new(storedDates)
		r.stored[key] = d
	}
	*d = storedDates{issuer: unique.Make(issuerID), notAfter: notAfter.Unix(), lifetime: uint32(max(0, notAfter.Sub(notBefore)/time.Second)), onDemand: onDemand}
	if i := strings.LastIndex(key, "/"+name) + 1; i > 0 && i <= math.MaxUint16 && len(name) <= math.MaxUint8 {
		d.nameAt, d.nameLen = uint16(i), uint8(len(name))
		delete(r.storedNames, key)
	} else {
		r.storedNames[key] = name
	}
}

// noteHeld records, under r.mu, the names and dates of e, which leaves
// memory or was never held.
func (r *renewer) noteHeld(e *managed) {
	if tc := e.cert.Load(); tc != nil && tc.Leaf != nil {
		r.noteLocked(e.key, e.names[0], e.issuer, tc.Leaf.NotBefore, tc.Leaf.NotAfter, e.onDemand)
	}
}

// noteDamaged records that the record under key (data, as loaded) is
// damaged (err): counted as such, and stored as its renewal failing, for
// status's readers of fields alone and the alerts, which check such a
// record whole before they alert (alert.Damaged).
func (m *Manager) noteDamaged(ctx context.Context, key string, data []byte, err error) {
	m.countDamaged(key)
	if f, ferr := storage.UnmarshalFields(key, data); ferr == nil {
		m.noteRenewal(ctx, key, f.Names, fmt.Errorf("stored certificate is damaged; not renewing it: %w", err), time.Time{}, 1)
	}
}

// countDamaged counts the record under key as damaged: not renewed, so no
// longer counted among the certificates renewed.
func (m *Manager) countDamaged(key string) {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	if m.renew.damaged == nil {
		return // the scheduler has not started
	}
	m.renew.damaged[key] = struct{}{}
	delete(m.renew.stored, key)
	delete(m.renew.storedNames, key)
}

// noteStored records the names and dates of the certificate stored under
// key, which this Manager renews.
func (m *Manager) noteStored(key, name, issuerID string, notBefore, notAfter time.Time, onDemand bool) {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	m.renew.noteLocked(key, name, issuerID, notBefore, notAfter, onDemand)
}

// storedStats are the Stats entries of the certificates renewed that are
// not held, under r.mu.
func (r *renewer) storedStats(out []CertStats) []CertStats {
	names := make([]string, 0, len(r.stored)) // one allocation for every Names
	for key, d := range r.stored {
		if _, held := r.held[key]; held {
			continue
		}
		names = append(names, r.storedName(key, d))
		notBefore, notAfter := d.dates()
		out = append(out, CertStats{Key: key, Names: names[len(names)-1 : len(names) : len(names)], Issuer: d.issuer.Value(), OnDemand: d.onDemand,
			NotBefore: notBefore, NotAfter: notAfter, Failures: r.attempts[key]})
	}
	return out
}

// storedName is the primary name of the certificate d under key, under r.mu.
func (r *renewer) storedName(key string, d *storedDates) string {
	if d.nameLen > 0 {
		return key[d.nameAt : int(d.nameAt)+int(d.nameLen)]
	}
	return r.storedNames[key]
}

// dates are d's NotBefore and NotAfter.
func (d *storedDates) dates() (notBefore, notAfter time.Time) {
	notAfter = time.Unix(d.notAfter, 0)
	return notAfter.Add(-time.Duration(d.lifetime) * time.Second), notAfter
}
