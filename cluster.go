package certkeeper

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/internal/every"
	"github.com/certkeeper/certkeeper/internal/limit"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
	"golang.org/x/time/rate"
)

// Cluster says how Managers on several nodes that share one Storage (such
// as storage/redisstore) act as one. Its zero value works: what must be
// coordinated always is — one order per name (the issue lock, then a
// re-check of storage), one renewal per certificate, challenge answers
// shared through storage so whichever node the CA's validation request
// reaches can answer it — and these fields tune the rest.
type Cluster struct {
	// SyncInterval is how often the Manager compares the certificates it
	// holds in memory with storage, and swaps in those another node
	// renewed. A Storage that implements storage.Notifier (redisstore)
	// also tells it at once; the periodic check is the fallback for lost
	// notices. Zero means one minute; a negative value turns the periodic
	// check off.
	SyncInterval time.Duration

	// OrderLimit caps the new orders placed with one ACME CA account by
	// every Manager sharing Storage together: at most OrderLimit in any
	// OrderWindow, counted in storage under a lock. A node that finds the
	// budget spent fails the issuance at once with a rate-limit error
	// (issuer.ErrRateLimited). Renewals are not counted. Zero means no
	// shared cap; each process still keeps within the CA's published
	// limits on its own.
	OrderLimit int

	// OrderWindow is the window of OrderLimit. Zero means one hour.
	OrderWindow time.Duration
}

// Cluster defaults.
const (
	defaultSyncInterval = time.Minute
	defaultOrderWindow  = time.Hour
	// challengeTTL is how long a shared challenge answer is served after
	// it was presented, if the node that presented it died before its
	// CleanUp.
	challengeTTL = 10 * time.Minute
	// notifyTimeout bounds one notice or challenge write, which must not
	// hold an issuance up.
	notifyTimeout = 3 * time.Second
	// challengeLookupRate and challengeLookupBurst bound, per node, the
	// storage reads for validation requests naming a challenge that this
	// node neither presented nor heard announced: anyone can send such a
	// request (an http-01 path, an acme-tls/1 ClientHello), and without a
	// bound each would cost the shared storage a read. Announced
	// challenges are always read, so a CA's request gets its answer
	// during a flood; the bound is for storage without notices and for
	// a request that outruns its notice.
	challengeLookupRate  = 100
	challengeLookupBurst = 100
	// maxAnnounced bounds the challenges other nodes announced that a
	// node remembers; beyond it, new ones are read within the bound
	// above.
	maxAnnounced = 10000
	// announcePrefix starts the notice a node sends once it stored a
	// challenge answer: the answer's key follows. The answer's own key is
	// the notice that another node answered it.
	announcePrefix = "presented/"
	// revokedPrefix starts the notice markRevoked sends beside the
	// record's own key: the key of a certificate now marked revoked,
	// which a node that renews it without holding it replaces at once
	// (replaceRevoked) with no read of its own.
	revokedPrefix = "revoked/"
	// ordersLockWait bounds the wait for the shared order counter's lock.
	ordersLockWait = 10 * time.Second
)

// clusterState is the Manager's coordination state.
type clusterState struct {
	once sync.Once

	mu        sync.Mutex               // guards presented, announced and lookups
	presented map[string]*remoteAnswer // challenge key → another node's answer of it
	// announced are the challenges other nodes presented, as their
	// notices said: challenge key → when the answer expires. At most
	// maxAnnounced (notices come only from nodes sharing the storage).
	announced map[string]time.Time
	// lookups bounds the storage reads for validation requests naming a
	// challenge nobody announced (made at the first one).
	lookups *rate.Limiter
	// lookupsLogged spaces the warnings that lookups refused one.
	lookupsLogged every.Gate
}

// errNoLock marks an issuance that did not start because the issue lock
// could not be taken: storage is unreachable (or the lock wait ended).
// It is not the name's fault, so it does not count as a failure of the
// name.
var errNoLock = errors.New("no order without the cluster-wide issue lock")

func (m *Manager) syncInterval() time.Duration {
	if m.Cluster.SyncInterval == 0 {
		return defaultSyncInterval
	}
	return m.Cluster.SyncInterval
}

// startCluster starts, once, the goroutines that keep the certificates in
// memory in step with storage: a subscriber to the storage's notices (if
// it is a storage.Notifier) and the periodic check. They end with Close.
func (m *Manager) startCluster() {
	m.clu.once.Do(func() {
		// The renewal state these goroutines read is made by the
		// scheduler's first use: make it happen before they start.
		if m.ctx.Err() != nil || m.scheduler() == nil {
			return
		}
		if n, ok := m.store.(storage.Notifier); ok {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.subscribe(n)
			}()
		}
		if every := m.syncInterval(); every > 0 {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				t := time.NewTicker(every)
				defer t.Stop()
				for {
					select {
					case <-m.ctx.Done():
						return
					case <-t.C:
						m.guard("checking storage for certificates renewed elsewhere", slog.Attr{}, m.syncAll)
					}
				}
			}()
		}
	})
}

// subscribe follows the storage's change notices until Close, subscribing
// again after a failure.
func (m *Manager) subscribe(n storage.Notifier) {
	wait := time.Second
	for m.ctx.Err() == nil {
		ch, err := n.Subscribe(m.ctx)
		if err != nil {
			m.logger().Warn("subscribing to storage change notices; relying on the periodic check",
				slog.Any("err", err), slog.Duration("retry_in", wait))
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Minute)
			continue
		}
		wait = time.Second
		for key := range ch {
			if k, ok := strings.CutPrefix(key, announcePrefix); ok && strings.HasPrefix(k, challengesPrefix) {
				m.clu.announce(k, time.Now())
				continue
			}
			if strings.HasPrefix(key, challengesPrefix) {
				m.clu.answeredElsewhere(key)
				continue
			}
			if k, ok := strings.CutPrefix(key, revokedPrefix); ok && strings.HasPrefix(k, storage.CertificatePrefix("")) {
				if m.held(k) == nil { // one held reads the record at its key's own notice (refresh)
					m.replaceRevoked(k)
				}
				continue
			}
			if strings.HasPrefix(key, storage.CertificatePrefix("")) {
				m.guard("reloading a certificate another node stored", slog.String("key", key), func() {
					ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
					defer cancel()
					if m.held(key) == nil {
						m.learnStored(ctx, key, nil)
						return
					}
					if err := m.refresh(ctx, key); errors.Is(err, storage.ErrInvalidRecord) {
						m.logger().Warn("another node stored an invalid certificate record; serving the one in memory",
							slog.String("key", key), slog.Any("err", err))
					} else if err != nil {
						m.logger().Debug("reloading a certificate another node stored", slog.String("key", key), slog.Any("err", err))
					}
				})
			}
		}
		// The subscription ended without Close: subscribe again, not in
		// a tight loop.
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// notifyChanged tells the other nodes that key changed, if the storage
// can. A lost notice only delays them until their periodic check.
func (m *Manager) notifyChanged(ctx context.Context, key string) {
	n, ok := m.store.(storage.Notifier)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	if err := n.Notify(ctx, key); err != nil {
		m.logger().Warn("telling other nodes about a new certificate; they find it at their next check",
			slog.String("key", key), slog.Any("err", err))
	}
}

// syncAll compares every certificate held in memory with storage.
func (m *Manager) syncAll() {
	m.mergeStoredLimits()
	m.renew.mu.Lock()
	keys := make([]string, 0, len(m.renew.held))
	for k := range m.renew.held {
		keys = append(keys, k)
	}
	m.renew.mu.Unlock()
	var failed int
	var lastErr error
	for _, key := range keys {
		if m.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
		if err := m.refresh(ctx, key); err != nil && !isNotFound(err) {
			failed++
			lastErr = err
		}
		cancel()
	}
	if failed > 0 {
		m.logger().Warn("checking storage for certificates renewed by other nodes; serving those in memory",
			slog.Int("failed", failed), slog.Any("err", lastErr))
	}
}

// refresh loads the record under key and, if it holds a newer certificate
// than the one in memory, swaps it in: another node renewed it.
func (m *Manager) refresh(ctx context.Context, key string) error {
	e := m.held(key)
	if e == nil {
		return nil // not held here: it is loaded from storage when asked for
	}
	data, err := m.store.Load(ctx, key)
	if err != nil {
		return err
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil {
		return err // it names key
	}
	if rec.Revoked != nil {
		m.replaceRevoked(key) // revoked since it was loaded (certkeeper cert revoke -d)
		return nil
	}
	m.adoptNewer(ctx, key, rec)
	return nil
}

// adoptNewer swaps rec in for the certificate held under key if rec is a
// different certificate issued no earlier, and reports whether it did. The renewal time planned for the old certificate is dropped, so
// this node does not renew what another node just renewed.
func (m *Manager) adoptNewer(ctx context.Context, key string, rec *storage.Certificate) bool {
	e := m.held(key)
	if e == nil {
		return false
	}
	cur := e.cert.Load()
	if cur == nil || cur.Leaf == nil || len(cur.Certificate) == 0 || rec.Revoked != nil {
		return false
	}
	block, _ := pem.Decode(rec.ChainPEM)
	// Newer is issued later (NotBefore), not expiring later: a node that
	// renewed into a shorter profile, or replaced a revoked certificate
	// with one, stored the newer certificate all the same.
	if block == nil || bytes.Equal(block.Bytes, cur.Certificate[0]) || rec.NotBefore.Before(cur.Leaf.NotBefore) {
		return false
	}
	if time.Now().After(rec.NotAfter) {
		return false
	}
	// The failures this node recorded for the certificate end too: the
	// other node's success cleared them in storage, but a write of this
	// node's at the same moment could bring them back (a soak trial).
	m.endRenewalFailure(ctx, key)
	_, again, err := m.publishAgain(ctx, rec, nil, key, false)
	if err != nil {
		m.logger().Warn("swapping in a certificate another node stored", slog.String("key", key), slog.Any("err", err))
		return false
	}
	if !again { // another path of this node swapped it in at the same time
		m.logger().Info("certificate renewed by another node; swapped in", slog.Any("names", rec.Names),
			slog.String("issuer", rec.Issuer), slog.Time("not_after", rec.NotAfter))
		m.emit(Event{Kind: Loaded, Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter})
	}
	return true
}

// adoptStored is called by a renewal check with the record it loaded: if
// another node has renewed the certificate, it is swapped in and the
// check ends (the new certificate is scheduled on its own). Of one not in
// memory, the record's names and dates are noted for Stats, and a failing
// renewal here ends if another node renewed it (noteStoredRenewed).
func (m *Manager) adoptStored(ctx context.Context, key string, rec *storage.Certificate, leaf *x509.Certificate) bool {
	e := m.held(key)
	if e == nil {
		m.noteStoredRenewed(ctx, key, rec.Names, rec.Issuer, leaf.NotBefore, leaf.NotAfter, rec.OnDemand)
		return false
	}
	if cur := e.cert.Load(); cur != nil && cur.Leaf != nil && cur.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		return false
	}
	return m.adoptNewer(ctx, key, rec)
}

// mergeStoredLimits adds the failure and duplicate counts other nodes
// stored to this node's, so a name that failed on one node backs off on
// all of them.
func (m *Manager) mergeStoredLimits() {
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	m.mergeLimitsFrom(ctx)
}

// mergeLimitsFrom is mergeStoredLimits on ctx. A missing, unreadable or
// damaged stored state adds nothing (loadLimits reports those).
func (m *Manager) mergeLimitsFrom(ctx context.Context) {
	data, err := m.store.Load(ctx, storage.StateKey("limits"))
	if err != nil {
		return
	}
	var st limitsState
	if json.Unmarshal(data, &st) != nil {
		return
	}
	m.lim.failures.Restore(st.Failures)
	m.lim.dups.Restore(st.Duplicates)
	m.lim.merged.Store(time.Now().UnixNano())
}

// ordersRecord is the shared count of new orders of one CA account: the
// times of those within the window (a sliding log, so "N per window"
// holds for every window, not only on average).
type ordersRecord struct {
	Times []time.Time `json:"times"`
}

// takeSharedOrder spends one order of the cluster-wide budget of the CA
// account behind iss, under a storage lock, or returns a
// *limit.RateLimitError. Without a lock there is no order.
func (m *Manager) takeSharedOrder(ctx context.Context, iss issuer.Issuer) error {
	maxOrders := m.Cluster.OrderLimit
	if maxOrders <= 0 {
		return nil
	}
	if _, ok := iss.(*acmeca.Issuer); !ok {
		return nil
	}
	window := m.Cluster.OrderWindow
	if window <= 0 {
		window = defaultOrderWindow
	}
	if v, ok := m.lim.sharedSpent.Load(iss.ID()); ok && time.Now().Before(v.(*limit.RateLimitError).RetryAt) {
		return v.(*limit.RateLimitError)
	}
	key, err := storage.OrdersKey(iss.ID())
	if err != nil {
		return err
	}
	lctx, cancel := context.WithTimeout(ctx, ordersLockWait)
	defer cancel()
	unlock, err := m.store.Lock(lctx, storage.OrdersLock(iss.ID()))
	if err != nil {
		return fmt.Errorf("locking the shared order count: %w", err)
	}
	defer unlock()
	var rec ordersRecord
	data, err := m.store.Load(ctx, key)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &rec); err != nil {
			m.logger().Warn("the shared order count is damaged; starting afresh", slog.String("key", key), slog.Any("err", err))
			rec = ordersRecord{}
		}
	case !isNotFound(err):
		return fmt.Errorf("loading the shared order count: %w", err)
	}
	now := time.Now().UTC()
	kept := rec.Times[:0]
	for _, t := range rec.Times {
		if now.Sub(t) < window {
			kept = append(kept, t)
		}
	}
	if len(kept) >= maxOrders {
		spent := &limit.RateLimitError{Limit: fmt.Sprintf("%d new orders per %s for the cluster", maxOrders, window), RetryAt: kept[len(kept)-maxOrders].Add(window),
			Configured: true}
		m.lim.sharedSpent.Store(iss.ID(), spent)
		return spent
	}
	rec.Times = append(kept, now)
	data, err = json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := m.store.Store(ctx, key, data); err != nil {
		return fmt.Errorf("storing the shared order count: %w", err)
	}
	return nil
}

// heldRecord describes the certificate held in memory under key (names
// and dates, no key material), for a renewal that cannot read storage; nil
// if none is held.
func (m *Manager) heldRecord(key string) *storage.Certificate {
	e := m.held(key)
	if e == nil {
		return nil
	}
	c := e.cert.Load()
	if c == nil || c.Leaf == nil {
		return nil
	}
	return &storage.Certificate{Names: e.names, Issuer: e.issuer, NotBefore: c.Leaf.NotBefore, NotAfter: c.Leaf.NotAfter}
}

// held returns the entry in memory whose renewal is scheduled under the
// storage key key, or nil.
func (m *Manager) held(key string) *managed {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	return m.renew.held[key]
}
