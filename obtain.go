package certkeeper

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/internal/timeline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

func isNotFound(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// Cert obtains a certificate for names (one certificate covering all of
// them; the first is the primary name) unless storage already holds one,
// and keeps it in memory and renewed from now on. Names given here need no
// Policy. Names that CertFiles serve, all of them, are not ordered: the
// files' certificate is what handshakes get, and Cert returns nil. Use it
// to have certificates ready before the first handshake, once the
// listeners that answer the CA's challenges accept connections (TLSConfig
// on 443 for tls-alpn-01, HTTPHandler on 80 for http-01): the CA
// validates through them. ctx bounds how long Cert waits; an issuance it
// started goes on (within IssueTimeout) and is stored, as a handshake's
// does, but a ctx done already orders nothing. After Close it returns
// ErrClosed; Close abandons a Cert in flight.
func (m *Manager) Cert(ctx context.Context, names ...string) error {
	if err := m.init(); err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("certkeeper: Cert needs at least one name")
	}
	if err := ctx.Err(); err != nil {
		return err // nobody waits: nothing is ordered
	}
	norm := make([]string, 0, len(names))
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	for _, raw := range names {
		s, err := n.Normalize(raw)
		if err != nil {
			return err
		}
		if !slices.Contains(norm, s) {
			norm = append(norm, s)
		}
	}
	if m.servedByCertFiles(norm) {
		// CertFiles win at a handshake: a certificate ordered here would
		// be stored and, once loaded, shadow the files' one.
		m.logger().Info("certificate not ordered: CertFiles serve every name", slog.Any("names", norm))
		return nil
	}
	variants := []string{""}
	if m.rsaVariant(norm[0]) {
		variants = append(variants, variantRSA)
	}
	for _, variant := range variants {
		ch := m.flight.DoChan(variant+"/"+norm[0], func() (any, error) {
			if !m.track() {
				return nil, ErrClosed
			}
			defer m.wg.Done()
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.issueTimeout())
			defer cancel()
			defer context.AfterFunc(m.ctx, cancel)() // Close abandons it, as an on-demand issuance
			e, err := contain(m, "obtaining a certificate for", slog.String("name", norm[0]), func() (*managed, error) {
				if e, err := m.loadStored(ctx, norm[0], variant); err == nil && coversAll(e, norm) {
					return e, nil
				}
				e, err := m.obtain(ctx, norm, nil, nil, false, variant)
				m.noteFirstIssue(ctx, norm, variant, err) // for status (failures.go)
				return e, err
			})
			if err != nil && m.ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", ErrClosed, err)
			}
			return e, err
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return r.Err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func coversAll(e *managed, names []string) bool {
	for _, n := range names {
		if !slices.Contains(e.names, n) {
			return false
		}
	}
	return true
}

// loadStored finds a usable stored certificate for name — under any of
// the issuers, exact or by a one-label wildcard — and puts it in memory.
func (m *Manager) loadStored(ctx context.Context, name, variant string) (*managed, error) {
	return m.loadStoredAfter(ctx, name, variant, nil)
}

// loadStoredAfter is loadStored for a renewal's re-check of storage: a
// stored certificate that is prev, or was issued before it, counts as
// absent, so the certificate being renewed, found still stored, is
// neither put in memory again nor reported as Loaded.
func (m *Manager) loadStoredAfter(ctx context.Context, name, variant string, prev *x509.Certificate) (*managed, error) {
	candidates := storedCandidates(name)
	var firstErr error
	for _, n := range candidates {
		for _, iss := range m.allIssuers(name) {
			key, err := storage.CertificateKeyVariant(iss.ID(), n, variant)
			if err != nil {
				continue
			}
			e, err := m.loadKey(ctx, key, prev)
			if err == nil {
				return e, nil
			}
			if !isNotFound(err) && firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return m.loadOtherName(ctx, candidates, variant, prev)
}

// loadUnderApex finds a wildcard stored under its apex (-d a.example -d
// '*.a.example', certbot's usual certificate) that another process stored
// after this node indexed storage's other names: an import into a running
// proxy's storage, whose subdomains each got a certificate of their own
// at their first handshake (a migration trial) until the index learnt of
// it at the next expiry sweep. It costs a read of the apex's key per
// subdomain about to be ordered (the policy allowed it): not for one the
// policy refuses, which a flood of names would make many.
func (m *Manager) loadUnderApex(ctx context.Context, name, variant string) (*managed, error) {
	candidates := storedCandidates(name)
	if len(candidates) < 2 {
		return nil, fs.ErrNotExist
	}
	wildcard := candidates[1]
	apex := strings.TrimPrefix(wildcard, "*.")
	if !strings.Contains(apex, ".") {
		return nil, fs.ErrNotExist
	}
	for _, iss := range m.allIssuers(name) {
		key, err := storage.CertificateKeyVariant(iss.ID(), apex, variant)
		if err != nil || m.held(key) != nil { // held: its other names are indexed
			continue
		}
		data, err := m.store.Load(ctx, key)
		if err != nil {
			continue
		}
		if rec, err := storage.UnmarshalCertificate(key, data); err == nil && slices.Contains(rec.Names, wildcard) {
			m.learnStored(ctx, key, data)
			return m.loadOtherName(ctx, []string{wildcard}, variant, nil)
		}
	}
	return nil, fs.ErrNotExist
}

// storedCandidates are the names a stored certificate for name may be
// under: name, and the one-label wildcard above it (not for a wildcard).
func storedCandidates(name string) []string {
	if i := strings.IndexByte(name, '.'); i > 0 && !strings.HasPrefix(name, "*.") {
		return []string{name, "*." + name[i+1:]}
	}
	return []string{name}
}

// loadKey loads one stored record; an expired certificate counts as
// absent (it is never served), and so do prev and older ones when prev
// is set (loadStoredAfter).
func (m *Manager) loadKey(ctx context.Context, key string, prev *x509.Certificate) (*managed, error) {
	data, err := m.store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	rec, tc, err := storage.UnmarshalCertificateTLS(key, data) // leaf and key parsed once
	if err != nil {
		return nil, err // it names key
	}
	if prev != nil && tc.Leaf != nil && (tc.Leaf.Equal(prev) || tc.Leaf.NotBefore.Before(prev.NotBefore)) {
		return nil, fmt.Errorf("stored certificate %s is the one being renewed: %w", key, fs.ErrNotExist)
	}
	if time.Now().After(rec.NotAfter) {
		return nil, fmt.Errorf("stored certificate %s expired at %s: %w", key, rec.NotAfter, fs.ErrNotExist)
	}
	if rec.Revoked != nil {
		// Not served: a new certificate is obtained instead, as for an
		// expired one (after keyCompromise its key is in other hands).
		m.replaceRevoked(key)
		return nil, fmt.Errorf("stored certificate %s was revoked (%s): %w", key, rec.Revoked.Reason, fs.ErrNotExist)
	}
	e, again, err := m.publishAgain(ctx, rec, tc, key, false)
	if err != nil {
		return nil, err
	}
	if !again {
		m.emit(Event{Kind: Loaded, Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter})
	}
	return e, nil
}

// publish puts a record in memory and schedules its renewal. A
// certificate replacing one in memory keeps its predecessor's last-seen
// time, so renewing does not count as use.
//
// fresh says the certificate was issued just now: one that is due for
// renewal at once (a lifetime shorter than the CA's backdating) must not
// be renewed in a loop.
//
// A certificate loaded from storage takes its stored last-seen time, so
// the unused-name lifecycle survives restarts.
//
// tc is rec ready to serve, if the caller has it already
// (storage.UnmarshalCertificateTLS); nil builds it from rec.
func (m *Manager) publish(ctx context.Context, rec *storage.Certificate, tc *tls.Certificate, key string, fresh bool) (*managed, error) {
	e, _, err := m.publishAgain(ctx, rec, tc, key, fresh)
	return e, err
}

// publishAgain is publish, also reporting whether the certificate it
// replaced in memory was this very one (again): two paths that find one
// renewal in storage at once (a node's notice of it, the node's own
// renewal re-checking storage, a handshake loading it) each publish it,
// and only the first is news (a Loaded event).
func (m *Manager) publishAgain(ctx context.Context, rec *storage.Certificate, tc *tls.Certificate, key string, fresh bool) (e *managed, again bool, err error) {
	if tc == nil {
		if tc, err = rec.TLSCertificate(); err != nil {
			return nil, false, err
		}
	}
	e = &managed{names: rec.Names, issuer: rec.Issuer, key: key, onDemand: rec.OnDemand}
	e.cert.Store(tc)
	m.others.note(key, rec.Variant, rec.Names)
	if old := m.cacheFor(rec.Variant).get(rec.Names[0]); old != nil {
		e.lastSeen.Store(old.lastSeen.Load())
	} else if s := m.storedSeen(ctx, rec.Names[0]); s > 0 && !fresh {
		e.lastSeen.Store(s)
	} else {
		e.touch(time.Now())
	}
	m.startHousekeeping()
	m.startCluster()
	left := m.cacheFor(rec.Variant).put(e)
	for _, o := range left {
		if c := o.cert.Load(); c != nil && c.Leaf != nil && tc.Leaf != nil && c.Leaf.Equal(tc.Leaf) {
			again = true
		}
	}
	m.released(left)
	m.keepStaple(ctx, e, m.cacheFor(rec.Variant))
	m.scheduleRenewal(e, fresh, rec.RenewalWindow)
	return e, again, nil
}

// obtain issues a certificate for names through the issuer chain, stores
// it, and publishes it. prev is the certificate being renewed, if any,
// and prevRec its stored record when known (the renewal is then ordered
// from the account that ordered prev: IssueRequest.ReplacesRecord). It
// holds the cluster-wide issue lock for the primary name and, for a first
// issue, re-checks storage after taking it: another process may have
// issued while this one waited.
//
// First issue and renewal both come here, and it issues through Issue.
//
// The lock is released after obtain returns, in the background: the
// certificate is stored and published by then, and the handshake that
// waits for it need not wait for the storage round trip (on filestore, a
// lease file and its directory removed). The next obtain of the same name
// in this process waits for that release rather than finding the lock
// held and backing off.
func (m *Manager) obtain(ctx context.Context, names []string, prev *x509.Certificate, prevRec *storage.Certificate, onDemand bool, variant string) (*managed, error) {
	lock := storage.IssueLock(names[0])
	if err := m.releases.wait(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking %s for issuance (%w): %w", names[0], errNoLock, err)
	}
	unlock, err := m.lockIssue(ctx, lock, names[0], prev != nil)
	if err != nil {
		return nil, fmt.Errorf("locking %s for issuance (%w): %w", names[0], errNoLock, err)
	}
	defer m.inBackground(m.releases.start(lock, unlock))
	timeline.Mark(ctx, "issue_lock")
	if prev == nil {
		m.waitScan(ctx) // the stored records' other names indexed (othernames.go)
	}
	if e, err := m.loadStoredAfter(ctx, names[0], variant, prev); err == nil && coversAll(e, names) {
		// Another process obtained (or renewed, or replaced a revoked
		// one) while we waited: a different certificate issued no
		// earlier. Issued, not expiring: a replacement from a shorter
		// profile expires sooner and is still the newer one.
		if leaf := e.cert.Load().Leaf; prev == nil || !leaf.Equal(prev) && !leaf.NotBefore.Before(prev.NotBefore) {
			return e, nil
		}
	}
	timeline.Mark(ctx, "storage_recheck")
	var prevKey string // the record renewed, marked if its renewal fails (renewfailed.go)
	if prev != nil && prevRec != nil {
		prevKey, _ = storage.CertificateKeyVariant(prevRec.Issuer, names[0], variant)
		if err := m.renewalFailedElsewhere(ctx, prevKey, prev); err != nil {
			return nil, err
		}
	}
	if prev == nil {
		if err := m.checkDuplicate(ctx, names); err != nil {
			return nil, err
		}
	}
	timeline.Mark(ctx, "duplicate_check")
	start := time.Now()
	got, err := Issue(ctx, m.store, IssueRequest{
		Names: names, Issuers: m.chainFor(names, prev != nil), KeyType: m.keyTypeFor(names[0], variant),
		Replaces: prev, Email: m.Email, Variant: variant, OnDemand: onDemand,
		ReplacesRecord: prevRec,
		NextARICheck: func(now, retryAfter time.Time) time.Time {
			return m.ariCheck(now, retryAfter, time.Time{}, false)
		},
	})
	var unstored *UnstoredError
	if errors.As(err, &unstored) {
		got, err = unstored.Issued, m.keepUnstored(unstored)
	} else if err != nil && prevKey != "" && ctx.Err() == nil && !budgetRefusal(err) {
		m.markRenewalFailed(ctx, prevKey, prev, err) // before the lock is released: for the nodes waiting for it
	}
	if err != nil {
		return nil, err
	}
	rec, skey, cert := got.Record, got.Key, got.Certificate
	if w := cert.RenewalWindow; w != nil && w.End.After(w.Start) && rec.RenewalWindow == nil { // issuedWindow dropped it: over (windowOver)
		m.logger().Warn("the CA's renewal window for a certificate it has just issued had already ended; not kept: the certificate is renewed by its lifetime, and the CA is asked again at its next check",
			slog.Any("names", names), slog.String("issuer", cert.Issuer), slog.Time("window_start", w.Start),
			slog.Time("window_end", w.End), slog.String("explanation", w.ExplanationURL))
	}
	m.notifyChanged(ctx, skey)
	timeline.Mark(ctx, "notify")
	e, err := m.publish(ctx, rec, nil, skey, true)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		m.endRenewalFailure(ctx, skey) // of a record it replaces: expired, revoked or damaged
	}
	timeline.Mark(ctx, "publish")
	kind := Obtained
	if prev != nil {
		kind = Renewed
	} else if _, acme := m.issuerByID(names[0], cert.Issuer).(renewalARI); acme {
		m.recordIssued(ctx, names)
	}
	timeline.Mark(ctx, "record_issued")
	attrs := []any{slog.Any("names", names), slog.String("issuer", cert.Issuer),
		slog.Time("not_after", cert.Leaf.NotAfter), slog.Duration("took", time.Since(start))}
	if s := m.scheduler(); s != nil {
		if at, ok := s.When(skey); ok {
			// The operator's "when next?" without status: its due time, not
			// the check of the CA's window scheduled before it; planned as
			// status plans it, from the window the CA gave with it.
			c := renewal.Cert{NotBefore: cert.Leaf.NotBefore, NotAfter: cert.Leaf.NotAfter, Serial: cert.Leaf.SerialNumber,
				ARI: renewal.Stored(rec.RenewalWindow)}
			if due := renewal.Due(c, time.Now(), nil); due.After(at) {
				at = due
			}
			attrs = append(attrs, slog.Time("renew_at", at))
		}
	}
	m.logger().Info("certificate "+kind.String(), attrs...)
	m.emit(Event{Kind: kind, Names: names, Issuer: cert.Issuer, NotAfter: cert.Leaf.NotAfter, Duration: time.Since(start)})
	timeline.Mark(ctx, "log_emit")
	return e, nil
}

// lockWaitNote is how long taking an issue lock may take before the wait
// is logged: longer means another process holds it.
const lockWaitNote = time.Second

// renewalLockTry is how long a renewal waits for an issue lock another
// process holds before it leaves the certificate to that process
// (errLockBusy): the nodes of a cluster draw the same due time from a
// certificate's serial, and workers that waited for each other's locks
// renewed one certificate at a time across the cluster (a trial's four
// nodes renewed no faster than one, and a backlog let certificates
// expire).
const renewalLockTry = 2 * time.Second

// errLockBusy is a renewal not started because another process holds the
// certificate's issue lock: it is renewing it (renewDue checks again
// later, and adopts what it stored).
var errLockBusy = errors.New("another process holds the issue lock")

// lockIssue takes the issue lock for name, logging at info when it has to
// wait for it (another node issuing the name, or a process that stopped
// without releasing it, whose lease must run out) and how long it waited:
// a handshake or API request that hangs then has a reason in the log. A
// renewal waits renewalLockTry at most, then returns errLockBusy.
func (m *Manager) lockIssue(ctx context.Context, lock, name string, renewal bool) (func(), error) {
	if renewal {
		tctx, cancel := context.WithTimeout(ctx, renewalLockTry)
		defer cancel()
		unlock, err := m.store.Lock(tctx, lock)
		if err != nil && ctx.Err() == nil && tctx.Err() != nil {
			return nil, errLockBusy
		}
		return unlock, err
	}
	start := time.Now()
	note := time.AfterFunc(lockWaitNote, func() {
		m.logger().Info("waiting for the issue lock: another process holds it (a node issuing this name, or one that stopped without releasing it: its lease runs out)",
			slog.String("name", name))
	})
	unlock, err := m.store.Lock(ctx, lock)
	if !note.Stop() && err == nil {
		m.logger().Info("issue lock taken after waiting", slog.String("name", name), slog.Duration("waited", time.Since(start).Round(time.Millisecond)))
	}
	return unlock, err
}

// inBackground runs f on a goroutine that Close waits for; while the
// Manager is closing, it runs f before it returns.
func (m *Manager) inBackground(f func()) {
	if m.ctx.Err() != nil {
		f()
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// issueReleases tracks the issue locks being released in the background,
// by lock name.
type issueReleases struct {
	m sync.Map // lock name → chan struct{}, closed once released
}

// start returns unlock wrapped so that wait, until it has run, waits for
// it.
func (r *issueReleases) start(lock string, unlock func()) func() {
	done := make(chan struct{})
	r.m.Store(lock, done)
	return func() {
		unlock()
		r.m.CompareAndDelete(lock, done)
		close(done)
	}
}

// wait returns once lock is not being released by this process.
func (r *issueReleases) wait(ctx context.Context, lock string) error {
	v, ok := r.m.Load(lock)
	if !ok {
		return nil
	}
	select {
	case <-v.(chan struct{}):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// chainFor is the issuer chain for names with the Manager's hooks: a new
// order spends the CA's order budget (renewals are exempt: they are
// exempt from new-order limits at Let's Encrypt, with ARI, and must not
// lapse for a local budget), and a failure is reported and pauses a
// rate-limited CA.
func (m *Manager) chainFor(names []string, renewal bool) *issuer.Chain {
	c := &issuer.Chain{
		Issuers: m.issuersFor(names[0]),
		Failed: func(ctx context.Context, iss issuer.Issuer, err error, took time.Duration) {
			m.emit(Event{Kind: IssuerFailed, Names: names, Issuer: iss.ID(), Err: m.explain(err), Duration: took, Renewal: renewal})
			m.noteIssueError(ctx, iss, err)
		},
		Logger:     m.logger(),
		CallerLogs: true, // retryLater, the handshake, Keep; Cert returns it
	}
	if !renewal {
		c.Before = func(ctx context.Context, iss issuer.Issuer, _ issuer.Request) error {
			err := m.takeOrder(ctx, iss)
			timeline.Mark(ctx, "order_budget")
			return err
		}
	}
	return c
}
