package certkeeper

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/ordered"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// defaultUnusedAfter is how long an on-demand certificate is renewed
// without a handshake asking for it (Manager.UnusedAfter).
const defaultUnusedAfter = status.DefaultUnusedAfter // one definition: status lets such a certificate lapse too

// defaultRenewSpacing is the time between the renewals of certificates
// found past their renewal time at start, without Cluster.OrderLimit: a
// restart after an outage, or with a storage filled elsewhere, must not
// fire thousands of orders at once.
const defaultRenewSpacing = 500 * time.Millisecond

// renewer holds the renewal state of a Manager: one timer heap for all its
// certificates, keyed by storage key, and per-key failure counts.
//
// Memory is bounded by the cache, not by storage: a certificate that is
// not in a cache is known here only by its key, primary name and times
// (the scheduler's entry, planned, stored), never by its certificate,
// key or parsed leaf. Its renewal loads it from storage, renews, stores and drops it.
type renewer struct {
	once  sync.Once
	sched *renewal.Scheduler

	scanned chan struct{} // closed when the start-up scan has ended

	mu       sync.Mutex                // guards the maps below
	attempts map[string]int            // storage key → consecutive failures
	planned  map[string]plannedRenewal // storage key → the renewal time drawn for it
	held     map[string]*managed       // storage key → its entry while in a cache (dropped when it leaves)
	// stored holds, by storage key, the primary name and dates of each
	// certificate renewed here (storedDates), for Stats, which reads them
	// for those not held: the metrics count every certificate renewed,
	// not only those a handshake loaded. storedNames holds the primary
	// names that their keys do not spell as they are (storedDates.nameLen 0).
	stored      map[string]*storedDates
	storedNames map[string]string
	// damaged holds the keys of the records found damaged (the scan could
	// not decode them, a renewal check could not parse them): not
	// renewed, and counted by Stats until replaced or gone.
	damaged map[string]struct{}
	// letGo holds the keys of the on-demand certificates let go as
	// unused (renewStored), with the expiry of the one let go: the expiry
	// sweep, which takes up the records other nodes store (learnStored),
	// does not take them up again, until a renewed one is stored.
	letGo map[string]int64
	// loadFailed holds the keys whose renewal check could not read the
	// record (loadError), checked again once the storage answers
	// (watchStorage, which watching says runs).
	loadFailed map[string]struct{}
	watching   atomic.Bool
	// ocsp holds when each key's certificate was last marked revoked on
	// its OCSP responder's word, for an hour (ocspRevoked).
	ocsp map[string]time.Time
	// ariPaused holds, by issuer ID, until when a CA whose renewal window
	// could not be fetched is not asked (askARI).
	ariPaused map[string]time.Time
	// refused holds the keys of the certificates not renewed because the
	// policy no longer allows their names (refusedByPolicy): left to
	// expire, they are not counted among those renewed (Stats).
	refused map[string]struct{}
}

// plannedRenewal is the renewal time drawn for one certificate, with its
// serial: a time drawn for a certificate that another node has since
// renewed is not the renewed one's. (A node that holds the certificate
// drops the time when it swaps the new one in; one that does not hold
// it, e.g. restarted since, learns of the renewal only from the serial.)
type plannedRenewal struct {
	serial *big.Int
	at     time.Time
}

// of returns the time planned for the certificate with this serial, if
// the time was drawn for it.
func (p plannedRenewal) of(serial *big.Int) (time.Time, bool) {
	if p.serial == nil || p.serial.Cmp(serial) != 0 {
		return time.Time{}, false
	}
	return p.at, true
}

// renewalARI is the optional interface of issuers that offer ACME Renewal
// Information (RFC 9773); *acmeca.Issuer implements it.
type renewalARI interface {
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (acme.RenewalInfo, error)
}

// offersARI reports whether the issuer of a certificate (its primary name
// and issuer ID) may offer a renewal window: an ACME CA, whose window is
// then asked for at least twice a day until the certificate is due, as
// Let's Encrypt asks, so that a CA wanting it renewed sooner (an incident,
// a revocation ahead) is heard within hours, not at the lifetime rule's
// due time weeks later.
func (m *Manager) offersARI(name, issuerID string) bool {
	_, ok := m.issuerByID(name, issuerID).(renewalARI)
	return ok
}

// ariCheck is when to ask for a certificate's renewal window next, after
// a check at now (renewal.NextARICheck), or, with first, for a certificate
// whose last check is not known (renewal.FirstARICheck); never after due.
// Tests set ariEvery for a short interval.
func (m *Manager) ariCheck(now, retryAfter, due time.Time, first bool) time.Time {
	var next time.Time
	switch {
	case m.ariEvery > 0: // less up to a quarter, as checks drift apart in [11h, 12h]
		next = now.Add(m.ariEvery - rand.N(m.ariEvery/4+1))
	case first:
		next = renewal.FirstARICheck(now, nil)
	default:
		// Without due: NextARICheck puts a check no sooner than a minute
		// on, where a certificate due sooner is renewed first.
		next = renewal.NextARICheck(now, retryAfter, time.Time{}, nil)
	}
	if !due.IsZero() && due.Before(next) {
		return due
	}
	return next
}

// ariTimeout bounds one request for a renewal window, and ariPause is how
// long a CA whose window could not be fetched is not asked again (its
// certificates keep the lifetime rule's time and their next checks): the
// checks of every certificate, twice a day, must not hold the renewal
// workers while a CA's endpoint hangs.
const (
	ariTimeout = 10 * time.Second
	ariPause   = 5 * time.Minute
)

// window is the renewal window of rec's certificate (leaf) at now, its
// explanation and when to check it next: as another Manager sharing the
// storage asked it lately (sharedWindow), else as the CA answers now
// (asked); none if its issuer offers no ARI.
func (m *Manager) window(ctx context.Context, rec *storage.Certificate, leaf *x509.Certificate, now time.Time) (w renewal.Window, explanation string, next time.Time, asked bool) {
	ari, ok := m.issuerByID(rec.Names[0], rec.Issuer).(renewalARI)
	if !ok {
		return renewal.Window{}, "", time.Time{}, false
	}
	if w, explanation, next, ok = m.sharedWindow(rec, now); ok {
		return w, explanation, next, false
	}
	w, explanation, next = m.askARI(ctx, ari, rec, leaf, now)
	return w, explanation, next, true
}

// sharedWindow returns the renewal window kept in rec by the Manager that
// last asked the CA for it (this one or another sharing the storage), and
// its explanation, while that Manager's next check is ahead: asking again
// before then would only repeat its answer, once per node. This Manager
// checks again a little after that next check (sharedDelay), by when the
// Manager that planned it has stored a fresh window; if it has not (it
// stopped), this one asks. A next check more than 12 hours ahead (the
// longest time between two; a node whose clock is ahead) is not waited for.
func (m *Manager) sharedWindow(rec *storage.Certificate, now time.Time) (w renewal.Window, explanation string, next time.Time, ok bool) {
	sw, ahead := rec.RenewalWindow, 12*time.Hour
	if m.ariEvery > 0 {
		ahead = 2 * m.ariEvery
	}
	if sw == nil || !sw.NextCheck.After(now) || sw.NextCheck.After(now.Add(ahead)) {
		return renewal.Window{}, "", time.Time{}, false
	}
	if w = renewal.Stored(sw); !w.Valid() {
		return renewal.Window{}, "", time.Time{}, false
	}
	delay, spread := sharedDelay, sharedDelay
	if m.ariEvery > 0 {
		delay, spread = m.ariEvery/2, m.ariEvery/4
	}
	return w, sw.ExplanationURL, sw.NextCheck.Add(delay + rand.N(spread)), true
}

// sharedDelay is the least time a Manager checks a certificate's window
// after the next check another Manager planned (sharedWindow), and the
// most time it adds at random beyond: time for that one to ask (within
// ariTimeout) and store the answer (within its 5 s lock wait), and to
// spread the nodes that find it did not.
const sharedDelay = 20 * time.Second

// askARI asks iss, the CA of rec (whose leaf is leaf), for its renewal
// window and the window's explanation URL, and says when to ask again. A
// failure, other than a CA without ARI, gives the zero window and a next
// check as usual, and pauses asking that CA (ariPause).
func (m *Manager) askARI(ctx context.Context, iss renewalARI, rec *storage.Certificate, leaf *x509.Certificate, now time.Time) (w renewal.Window, explanation string, next time.Time) {
	m.renew.mu.Lock()
	paused := now.Before(m.renew.ariPaused[rec.Issuer])
	m.renew.mu.Unlock()
	if paused {
		return renewal.Window{}, "", m.ariCheck(now, time.Time{}, time.Time{}, false)
	}
	actx, cancel := context.WithTimeout(ctx, ariTimeout)
	defer cancel()
	ri, err := iss.RenewalInfo(actx, leaf)
	switch {
	case err == nil && ri.HasWindow():
		var retryAfter time.Time
		if ri.RetryAfter != nil {
			retryAfter = *ri.RetryAfter
		}
		w = renewal.Window{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End}
		return w, ri.ExplanationURL, m.ariCheck(now, retryAfter, time.Time{}, false)
	case err != nil && !errors.Is(err, acme.ErrUnsupported):
		// Asked again at the next check: a CA down for a while must not
		// silence its window until the lifetime rule's due time.
		m.logger().Debug("ARI check failed; using the lifetime rule", slog.Any("names", rec.Names), slog.Any("err", err))
		m.renew.mu.Lock()
		m.renew.ariPaused[rec.Issuer] = time.Now().Add(ariPause)
		m.renew.mu.Unlock()
		return renewal.Window{}, "", m.ariCheck(now, time.Time{}, time.Time{}, false)
	}
	return renewal.Window{}, "", time.Time{}
}

// keepWindow stores w, the CA's renewal window for rec's certificate leaf
// (stored under key) as this Manager just asked it, with its explanation
// and the next check, in the record, so that status shows the time the
// renewal is planned for and the other Managers sharing the storage use
// it until the next check (sharedWindow). A lock not taken within 5 s (a
// renewal in progress) leaves it to the next check.
func (m *Manager) keepWindow(ctx context.Context, key string, rec *storage.Certificate, leaf *x509.Certificate, w renewal.Window, explanation string, next time.Time) {
	sw := storage.Window{Start: w.Start.UTC(), End: w.End.UTC(), NextCheck: next.UTC(), ExplanationURL: explanation}
	if !w.Valid() || sameWindow(rec, sw) {
		return
	}
	if _, err := keepWindow(ctx, m.store, key, rec.Names[0], leaf, sw, 5*time.Second); err != nil {
		m.logger().Debug("storing a certificate's renewal window for status", slog.String("key", key), slog.Any("err", err))
	}
}

// noteEarlyWindow logs, for a certificate due now, that its CA asks for it
// to be replaced sooner than the lifetime rule would (an incident, a
// revocation ahead), with the CA's explanation URL, which RFC 9773 asks
// clients to show their operator.
func (m *Manager) noteEarlyWindow(rec *storage.Certificate, c renewal.Cert, explanation string, now time.Time) {
	if !renewal.Early(c, now) {
		return
	}
	attrs := []any{slog.Any("names", rec.Names), slog.String("issuer", rec.Issuer), slog.Time("window_start", c.ARI.Start),
		slog.Time("window_end", c.ARI.End), slog.Time("not_after", rec.NotAfter)}
	if explanation != "" {
		attrs = append(attrs, slog.String("explanation_url", explanation))
	}
	m.logger().Warn("the CA asks for this certificate to be replaced early (its ARI window); replacing it now", attrs...)
}

func (m *Manager) unusedAfter() time.Duration {
	if m.UnusedAfter > 0 {
		return m.UnusedAfter
	}
	return defaultUnusedAfter
}

// scheduler starts the renewal scheduler on first use; nil once the
// Manager is closed.
func (m *Manager) scheduler() *renewal.Scheduler {
	m.renew.once.Do(func() {
		if m.ctx.Err() != nil {
			return
		}
		m.renew.sched = renewal.New(m.renewKey, 0)
		// Under the lock: Stats reads these maps as soon as init has
		// started the scan that calls this (a /metrics scrape at start).
		m.renew.mu.Lock()
		m.renew.attempts = make(map[string]int)
		m.renew.planned = make(map[string]plannedRenewal)
		m.renew.held = make(map[string]*managed)
		m.renew.stored = make(map[string]*storedDates)
		m.renew.storedNames = make(map[string]string)
		m.renew.damaged = make(map[string]struct{})
		m.renew.letGo = make(map[string]int64)
		m.renew.loadFailed = make(map[string]struct{})
		m.renew.ocsp = make(map[string]time.Time)
		m.renew.ariPaused = make(map[string]time.Time)
		m.renew.mu.Unlock()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			<-m.ctx.Done()
			m.renew.sched.Close()
		}()
	})
	return m.renew.sched
}

// startRenewalScan rebuilds the renewal schedule from storage in the
// background, once, at init: every stored certificate is renewed on time
// whether or not a handshake ever asks for it.
func (m *Manager) startRenewalScan() {
	m.renew.scanned = make(chan struct{})
	if m.ctx.Err() != nil {
		close(m.renew.scanned)
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(m.renew.scanned)
		m.guard("rebuilding the renewal schedule from storage", slog.Attr{}, func() { m.scanStored(m.ctx) })
		// On a storage with notices, follow them from the start, not from
		// the first certificate held: a node holding none still answers
		// the challenges other nodes announce (storedChallenge).
		if _, ok := m.store.(storage.Notifier); ok {
			m.startCluster()
		}
	}()
}

// listCertificates lists the stored certificate keys for the start-up
// scan, retrying with capped exponential back-off while the storage fails
// (a node started before its Redis): the renewals of certificates no
// handshake loads depend on it. It fails only when ctx ends.
func (m *Manager) listCertificates(ctx context.Context) ([]string, error) {
	keys, err := m.store.List(ctx, storage.CertificatePrefix(""))
	if err == nil || ctx.Err() != nil {
		return keys, err
	}
	m.logger().Warn("listing stored certificates to schedule their renewal failed; retrying until the storage answers",
		slog.Any("err", err))
	for wait := scanRetryMin; err != nil; wait = min(2*wait, scanRetryMax) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		keys, err = m.store.List(ctx, storage.CertificatePrefix(""))
	}
	m.logger().Info("storage answers again: scheduling the stored certificates' renewals", slog.Int("certificates", len(keys)))
	return keys, nil
}

// scanRetryMin and scanRetryMax bound the wait between the start-up
// scan's attempts to list a failing storage.
const (
	scanRetryMin = time.Second
	scanRetryMax = time.Minute
)

// overdue is a certificate found past its renewal time by the scan.
type overdue struct {
	key      string
	notAfter time.Time
}

// scanStored loads the stored last-seen times, then lists the stored
// certificate keys and reads the records (scanWorkers at a time: scanOne),
// scheduling each
// certificate by its dates alone (the record is decoded without parsing
// its certificate or key, and dropped at once), or for a check of its ARI
// window spread over the next 12 hours; only the keys are held. Certificates already past their renewal time are
// spread out, the soonest to expire first, renewSpacing apart with a
// random jitter: a restart does not fire them all at once. A record
// that expired while no process ran is renewed first (a handshake does not
// serve an expired stored certificate: it would order one itself, and a
// name nobody asks for would never be renewed); one expired for longer
// than the expiry sweep keeps records is left to the sweep. Records that
// cannot be read are reported once the scan ends (warnDamaged).
func (m *Manager) scanStored(ctx context.Context) {
	m.loadSeen(ctx)
	s := m.scheduler()
	if s == nil {
		return
	}
	keys, err := m.listCertificates(ctx)
	if err != nil {
		return // canceled: the Manager is closing
	}
	// The failures stored before this start, for Stats (the failing
	// gauge): they were counted only from the next failure on.
	m.readFailures(ctx)
	now := time.Now()
	defer func() {
		if ctx.Err() == nil {
			m.logger().Info("renewal schedule rebuilt from storage", slog.Int("certificates", len(keys)),
				slog.Duration("took", time.Since(now)))
		}
	}()
	var late []overdue
	var damaged []string // records the scan cannot read
	defer func() {
		if ctx.Err() == nil {
			m.warnDamaged(damaged)
		}
	}()
	// Records are read scanWorkers at a time (a Redis or PostgreSQL load
	// is a round trip: one at a time, 100,000 took 8.4 s on Redis, longer
	// than scanWait), and scheduled one at a time, in key order.
	_ = ordered.Each(ctx, keys, scanWorkers, scanAhead, func(ctx context.Context, key string) scanned {
		return m.scanOne(ctx, s, key, now)
	}, func(key string, r scanned) error {
		if r.damaged {
			damaged = append(damaged, key)
		}
		if m.scheduleScanned(s, key, r, now) {
			late = append(late, overdue{key: key, notAfter: r.fields.NotAfter})
		}
		return nil
	})
	if ctx.Err() != nil {
		return
	}
	slices.SortFunc(late, func(a, b overdue) int { return a.notAfter.Compare(b.notAfter) })
	spacing := m.renewSpacing()
	for i, o := range late {
		at := now.Add(time.Duration(i)*spacing + rand.N(spacing))
		if _, ok := s.When(o.key); !ok {
			s.Schedule(o.key, at)
		}
	}
	if len(late) > 0 {
		m.logger().Info("certificates past their renewal time are renewed one at a time",
			slog.Int("count", len(late)), slog.Duration("spacing", spacing))
	}
}

// scanWorkers and scanAhead bound the start-up scan's reads: how many
// at once, and how many read records wait to be scheduled.
const (
	scanWorkers = 4
	scanAhead   = 256
)

// scanned is what the start-up scan read of one record: its fields and
// due time (ok), or that it could not be decoded (damaged); neither for
// a key scheduled already, gone, unreadable, or expired long ago.
type scanned struct {
	fields  storage.CertificateFields
	due     time.Time
	ok      bool
	damaged bool
}

// scanOne reads the record under key for the start-up scan.
func (m *Manager) scanOne(ctx context.Context, s *renewal.Scheduler, key string, now time.Time) scanned {
	if _, ok := s.When(key); ok {
		return scanned{} // loaded, or renewed, since start
	}
	data, err := m.store.Load(ctx, key)
	if err != nil {
		return scanned{} // gone, or unreadable: a handshake or the sweep reports it
	}
	return m.scannedFrom(key, data, now)
}

// scannedFrom decodes the record data read under key for the start-up
// scan (or learnStored).
func (m *Manager) scannedFrom(key string, data []byte, now time.Time) scanned {
	d, err := storage.UnmarshalFields(key, data)
	if err != nil {
		return scanned{damaged: true}
	}
	if now.Sub(d.NotAfter) >= expiredKeepFor {
		return scanned{} // expired long ago: the sweep's
	}
	r := scanned{fields: d, ok: true}
	if !d.Files && d.Revoked == nil {
		r.due = m.storedDue(key, data, d, now)
	}
	return r
}

// scheduleScanned makes the record r read under key one this Manager
// renews: found by its other names, counted in Stats and scheduled for
// renewal (a revoked one at once); it reports whether the certificate is
// past its renewal time, for the caller to spread out.
func (m *Manager) scheduleScanned(s *renewal.Scheduler, key string, r scanned, now time.Time) (late bool) {
	if r.damaged {
		m.countDamaged(key)
	}
	if !r.ok {
		return false
	}
	if _, ok := s.When(key); ok {
		return false // loaded, or renewed, since it was read
	}
	d, due := r.fields, r.due
	m.others.note(key, d.Variant, d.Names)
	if d.Files {
		return false // cert renew's (renewStored), served but not renewed here
	}
	m.noteStored(key, d.Names[0], d.Issuer, d.NotBefore, d.NotAfter, d.OnDemand)
	m.resumeBackoff(key)
	switch {
	case d.Revoked != nil:
		s.Schedule(key, now) // replaced at once, not spread out
	case due.After(now):
		if m.offersARI(d.Names[0], d.Issuer) {
			due = m.ariCheck(now, time.Time{}, due, true)
		}
		s.Schedule(key, due)
	default:
		return true
	}
	return false
}

// learnStored makes a record another process stored after this
// Manager's start-up scan one this node renews, as the scan does with
// every record: a handshake for one of its other names is served it,
// Stats counts it, and it is renewed on time even if the node that
// stored it is gone and no handshake here ever asks for it. Before, such
// a record was found by its first name only, until a restart. It is
// called with the key of a change notice (data nil: the record is read),
// and by the expiry sweep with each record it read (data), which finds
// those whose notice was lost, or that came without one (a shared
// directory, an import). A record held here, or scheduled, is the
// renewal's concern.
func (m *Manager) learnStored(ctx context.Context, key string, data []byte) {
	s := m.scheduler()
	if s == nil || m.held(key) != nil {
		return
	}
	if _, scheduled := s.When(key); scheduled {
		// A notice for it costs no read (its renewal check reads it; a
		// revocation has a notice of its own: revokedPrefix), unless its
		// renewal fails here: another node may have renewed it. What the
		// sweep read is looked at.
		if data == nil && m.renewalFailing(key) {
			data, _ = m.store.Load(ctx, key)
		}
		if data != nil {
			m.revisitStored(ctx, key, data)
		}
		return
	}
	if data == nil {
		var err error
		if data, err = m.store.Load(ctx, key); err != nil {
			return // gone, or unreadable: the sweep or a handshake reports it
		}
	}
	now := time.Now()
	r := m.scannedFrom(key, data, now)
	d := r.fields
	m.renew.mu.Lock()
	letGo, ok := m.renew.letGo[key]
	m.renew.mu.Unlock()
	if ok && letGo == d.NotAfter.Unix() || r.ok && d.OnDemand && d.Revoked == nil && !r.due.After(now) && m.unused(key, d.Names[0], now) {
		return // let go as unused (renewStored), by this node or another: not taken up again at each sweep
	}
	if m.scheduleScanned(s, key, r, now) {
		s.Schedule(key, now.Add(rand.N(m.renewSpacing())))
	}
}

// revisitStored looks at the record data under key, scheduled here but
// not held, that the expiry sweep read or, while its renewal fails here,
// a notice brought: one marked revoked whose notice was lost (or a
// storage without notices) is replaced now, not at its planned renewal;
// one another node renewed has its new dates counted in Stats, and ends
// a failing renewal here (its metrics said failing, and the renewal
// failing for so long, until this node's own next check, weeks later
// with a 90-day certificate: a cluster trial).
func (m *Manager) revisitStored(ctx context.Context, key string, data []byte) {
	d, err := storage.UnmarshalFields(key, data)
	if err != nil || d.Files {
		return // the renewal check reports a damaged record
	}
	if d.Revoked != nil {
		m.replaceRevoked(key)
		return
	}
	if !m.noteStoredRenewed(ctx, key, d.Names, d.Issuer, d.NotBefore, d.NotAfter, d.OnDemand) {
		return
	}
	if s := m.scheduler(); s != nil {
		s.Schedule(key, m.storedDue(key, data, d, time.Now()))
	}
}

// noteStoredRenewed records the names and dates of the record under key,
// read by this node, which does not hold it (noteStored), and, if another
// node renewed the certificate while its renewal failed here, ends that
// failure (the attempts, the failure in status); it reports whether it
// did. Before, the metrics of that node counted the renewal failing (and
// certkeeper_renewal_failing_seconds grew) until its own next check.
func (m *Manager) noteStoredRenewed(ctx context.Context, key string, names []string, issuerID string, notBefore, notAfter time.Time, onDemand bool) bool {
	m.renew.mu.Lock()
	known := m.renew.stored[key]
	var renewed bool
	if known != nil && m.renew.attempts[key] > 0 {
		knownBefore, _ := known.dates()
		renewed = notBefore.After(knownBefore)
	}
	m.renew.noteLocked(key, names[0], issuerID, notBefore, notAfter, onDemand)
	m.renew.mu.Unlock()
	if renewed {
		m.endRenewalFailure(ctx, key)
		m.logger().Info("certificate renewed by another node; its failing renewal here ends", slog.Any("names", names),
			slog.Time("not_after", notAfter))
	}
	return renewed
}

// renewalFailing reports whether the renewal of key has failed here.
func (m *Manager) renewalFailing(key string) bool {
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	return m.renew.attempts[key] > 0
}

// warnDamaged reports the stored records the start-up scan could not
// read: they are not renewed, and a handshake for their name (which
// cannot be known from the record) obtains a new certificate;
// certkeeper status lists them, each with why.
func (m *Manager) warnDamaged(keys []string) {
	if len(keys) == 0 {
		return
	}
	m.logger().Warn("stored certificate records cannot be read, so they are not renewed: certkeeper status lists them with the reason",
		slog.Int("count", len(keys)), slog.Any("keys", keys[:min(len(keys), 10)]))
}

// storedDue is when to look at the certificate stored under key (data,
// its dates d) at start: from the CA's window kept in the record, if any,
// else by the lifetime rule, the start of the range its due time is drawn
// from (renewStored finds the time itself then), or, once that range has
// begun, the due time itself, which needs the serial from the leaf. (A
// point drawn at random, without the serial, had the start-up log count
// certificates as late that renewStored then found not due.)
func (m *Manager) storedDue(key string, data []byte, d storage.CertificateFields, now time.Time) time.Time {
	c := renewal.Cert{NotBefore: d.NotBefore, NotAfter: d.NotAfter, ARI: renewal.Stored(d.RenewalWindow)}
	if at := renewal.Earliest(c, now); at.After(now) {
		return at
	}
	if _, leaf, err := storage.UnmarshalCertificateLeaf(key, data); err == nil {
		c.Serial = leaf.SerialNumber
	}
	return renewal.Due(c, now, nil)
}

// resumeBackoff continues, after a restart, the attempt count of a
// renewal that was failing (the stored failure readFailures read), so
// that its backoff goes on from there. The restart itself tries it again
// (spread out, as any overdue certificate): restarting after fixing the
// cause is how an operator retries now. Without it a failing renewal
// retried at a restart backed off from a minute again, and the log's
// attempt went back to 1.
func (m *Manager) resumeBackoff(key string) {
	m.stats.failMu.Lock()
	f, failed := m.stats.failing[key]
	m.stats.failMu.Unlock()
	if !failed || f.FirstIssue || f.Attempt <= 0 {
		return
	}
	m.renew.mu.Lock()
	if m.renew.attempts[key] == 0 {
		m.renew.attempts[key] = f.Attempt
	}
	m.renew.mu.Unlock()
}

// renewSpacing is the time between start-up renewals: three quarters of
// the Cluster.OrderLimit budget when there is one (20 per minute gives one
// every 4 s, 15 a minute), else defaultRenewSpacing.
func (m *Manager) renewSpacing() time.Duration {
	if m.Cluster.OrderLimit <= 0 {
		return defaultRenewSpacing
	}
	window := m.Cluster.OrderWindow
	if window <= 0 {
		window = defaultOrderWindow
	}
	return max(window*4/time.Duration(3*m.Cluster.OrderLimit), time.Millisecond)
}

// scheduleRenewal arranges for e to be renewed when it is due. The first
// check comes at its due time, in the renewal window w its record keeps
// (the CA's ARI window, given with the certificate) or else by the
// lifetime rule, or, from a CA that may offer ARI, at the first check of
// its window (within 12 hours), if sooner; each check asks the CA for the
// window and reschedules accordingly. The due time is the one status
// shows: both compute it from the record's window and the serial. (Before,
// a new certificate's first check came by the lifetime rule alone, and
// status showed it renewing before the process did anything.)
//
// A certificate loaded from storage (not fresh) whose key is already
// scheduled keeps its time: the start-up scan, an earlier renewal check or
// a failure's backoff placed it with more knowledge (the order budget, the
// ARI window, Retry-After) than the lifetime rule, so a handshake loading
// it neither cuts a backoff short nor brings a spread-out renewal forward.
//
// A fresh certificate that is due at once gets a quarter of its lifetime
// before its first check instead, with an error logged: renewing it
// immediately would loop.
func (m *Manager) scheduleRenewal(e *managed, fresh bool, w *storage.Window) {
	s := m.scheduler()
	if s == nil {
		return
	}
	leaf := e.cert.Load().Leaf
	if leaf == nil {
		return
	}
	// Another certificate's arrival may have evicted e since it was put
	// in its cache: released then found nothing to drop, and holding it
	// now would keep it in memory for good. (released marks it before it
	// takes renew.mu.)
	m.renew.mu.Lock()
	if !e.left.Load() {
		m.renew.held[e.key] = e
	} else if m.renew.held[e.key] == nil {
		m.renew.noteHeld(e)
	}
	m.renew.mu.Unlock()
	if _, ok := s.When(e.key); ok && !fresh {
		return
	}
	now := time.Now()
	due := renewal.Due(renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber, ARI: renewal.Stored(w)}, now, nil)
	if fresh && !due.After(now) {
		due = now.Add(leaf.NotAfter.Sub(now) / 4)
		m.logger().Error("a new certificate is due for renewal as soon as it is issued; its lifetime is too short",
			slog.Any("names", e.names), slog.String("issuer", e.issuer), slog.Time("not_before", leaf.NotBefore),
			slog.Time("not_after", leaf.NotAfter), slog.Time("retry_at", due))
	}
	if m.offersARI(e.names[0], e.issuer) {
		due = m.ariCheck(now, time.Time{}, due, !fresh)
	}
	s.Schedule(e.key, due)
}

// replaceRevoked brings the renewal of the certificate under key, found
// revoked in storage, forward to now: clients that check refuse it, and
// after keyCompromise its key is in other hands. A replacement that
// already failed keeps its backoff.
func (m *Manager) replaceRevoked(key string) {
	s := m.scheduler()
	if s == nil {
		return
	}
	m.renew.mu.Lock()
	failed := m.renew.attempts[key] > 0
	m.renew.mu.Unlock()
	now := time.Now()
	if at, ok := s.When(key); failed || ok && !at.After(now) {
		return
	}
	s.Schedule(key, now)
}

// renewKey is the scheduler's callback: renewStored, contained (a panic
// fails this renewal run, logged with key, not the process).
func (m *Manager) renewKey(key string) {
	m.guard("renewing", slog.String("key", key), func() { m.renewStored(key) })
}

// renewStored re-reads the certificate from storage (another node may
// have renewed it), asks the CA's ARI window, and renews it if it is due,
// or reschedules it. A certificate that was not in memory is dropped from
// memory again once renewed: renewing it is no reason to hold it.
func (m *Manager) renewStored(key string) {
	ctx, cancel := context.WithTimeout(m.ctx, m.issueTimeout())
	defer cancel()
	rec, leaf, ok := m.loadToRenew(ctx, key)
	if !ok {
		return
	}
	if m.adoptStored(ctx, key, rec, leaf) {
		return // another node renewed it; the new one is scheduled
	}
	if rec.Files {
		// cert renew renews it, with the files it was issued for; renewing
		// the stored copy too would order it twice.
		m.logger().Debug("certificate not renewed here: cert renew renews it with its files", slog.Any("names", rec.Names))
		m.forget(key)
		return
	}
	now := time.Now()
	// A revoked certificate is replaced now, used or not: it stays in
	// storage, and a handshake would load it again.
	revoked := rec.Revoked != nil
	// With the serial, the time drawn from a window is the same at every
	// check, so a certificate checked at its due time is due then.
	c := renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber}
	var nextCheck time.Time
	var explanation string
	var asked bool // the CA was asked for the window now, not another node
	if !revoked {
		c.ARI, explanation, nextCheck, asked = m.window(ctx, rec, leaf, now)
	}
	// The time drawn from a window is kept until the window changes: drawn
	// again at every check it would drift towards the window's end.
	m.renew.mu.Lock()
	due, ok := m.renew.planned[key].of(leaf.SerialNumber)
	if !ok || (c.ARI.Valid() && !inWindow(due, c.ARI)) {
		due = renewal.Due(c, now, nil)
		if nextCheck.IsZero() || !nextCheck.Before(due) {
			m.renew.planned[key] = plannedRenewal{serial: leaf.SerialNumber, at: due}
		} else {
			// Held only for a renewal before the next check: a certificate
			// checked twice a day for weeks would hold it from the first.
			delete(m.renew.planned, key)
		}
	}
	retry := m.renew.attempts[key] > 0
	m.renew.mu.Unlock()
	if revoked && !retry {
		m.emit(Event{Kind: Revoked, Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter})
		m.logger().Warn("replacing a revoked certificate with a new key", slog.Any("names", rec.Names),
			slog.String("reason", rec.Revoked.Reason), slog.Time("revoked_at", rec.Revoked.At))
	}
	if revoked {
		due = now
	}
	if due.After(now) {
		next := due
		if !nextCheck.IsZero() && nextCheck.Before(due) {
			next = nextCheck
		}
		m.scheduler().Schedule(key, next)
		if asked {
			m.keepWindow(ctx, key, rec, leaf, c.ARI, explanation, nextCheck)
		}
		return
	}
	if !revoked && rec.OnDemand && m.unused(key, rec.Names[0], now) {
		m.logger().Info("certificate not renewed: no handshake asked for it recently",
			slog.Any("names", rec.Names), slog.Duration("unused_after", m.unusedAfter()), slog.Time("not_after", rec.NotAfter))
		m.forget(key)
		m.renew.mu.Lock()
		m.renew.letGo[key] = rec.NotAfter.Unix()
		m.renew.mu.Unlock()
		return
	}
	if !retry {
		m.noteEarlyWindow(rec, c, explanation, now)
	}
	if m.refusedByPolicy(ctx, key, rec) {
		return
	}
	m.renewDue(ctx, key, rec, leaf)
}

// loadToRenew loads and parses the record under key for renewStored,
// storing again the certificate in memory if the record is gone (another
// process deleted it); ok is false if there is nothing to renew now. A
// record the storage refuses or that is damaged is not renewed, and
// counted as damaged (Stats) until it is replaced; one that is gone,
// with nothing in memory to store again, is no longer renewed here (it
// was counted as renewed until a restart, a trial found).
func (m *Manager) loadToRenew(ctx context.Context, key string) (rec *storage.Certificate, leaf *x509.Certificate, ok bool) {
	data, err := m.loadForRenewal(ctx, key)
	if isNotFound(err) {
		if restored, rerr := m.restoreMissing(ctx, key); restored != nil {
			data, err = restored, nil
		} else if rerr != nil {
			err = rerr // retried below by the dates of the one held
		} else if ctx.Err() == nil {
			m.forget(key)
			return nil, nil, false
		}
	}
	if errors.Is(err, storage.ErrInvalidRecord) {
		m.logger().Error("stored certificate is refused by the storage; not renewing it", slog.String("key", key), slog.Any("err", err))
		m.noteDamaged(ctx, key, data, err)
		return nil, nil, false
	}
	if err != nil {
		if !isNotFound(err) {
			// Storage unreachable: back off by the dates of the
			// certificate known (in memory, else as scheduled).
			m.retryLater(key, m.knownRecord(key), &loadError{err})
		}
		return nil, nil, false
	}
	if m.loadsFailed() {
		m.resumeLoadFailed() // this read succeeded: so will theirs
	}
	rec, leaf, err = storage.UnmarshalCertificateLeaf(key, data) // parsed once
	if err != nil {
		m.logger().Error("stored certificate is damaged; not renewing it", slog.String("key", key), slog.Any("err", err))
		m.noteDamaged(ctx, key, data, err)
		return nil, nil, false
	}
	return rec, leaf, true
}

// renewDue renews the due certificate rec (stored under key, leaf its
// parsed leaf) and records the outcome: the next attempt after a failure,
// or the new certificate's record in place of the old.
func (m *Manager) renewDue(ctx context.Context, key string, rec *storage.Certificate, leaf *x509.Certificate) {
	wasHeld := m.held(key) != nil
	e, err := m.obtain(ctx, rec.Names, leaf, rec, rec.OnDemand, rec.Variant)
	if errors.Is(err, errLockBusy) {
		// Another node renews it: look again once it may have stored the
		// new one (adoptStored), and renew something else meanwhile.
		next := time.Now().Add(min(busyRecheck, max(time.Until(rec.NotAfter)/4, time.Second)))
		m.scheduler().Schedule(key, next)
		m.logger().Debug("certificate not renewed here: another process is renewing it", slog.Any("names", rec.Names), slog.Time("next_check", next))
		return
	}
	if err != nil {
		m.retryLater(key, rec, err)
		return
	}
	if !wasHeld {
		m.dropFromMemory(e, rec.Variant)
	}
	m.resetAttempts(key)
	m.noteRenewal(ctx, key, rec.Names, nil, time.Time{}, 0)
	m.noteFirstIssue(ctx, rec.Names, rec.Variant, nil) // a failing first issuance stored for its name is over too
	if e.key != key {
		// Renewed by another issuer of the chain: the old record must not
		// be renewed again, nor found first at the next start.
		m.forget(key)
		if err := m.store.Delete(ctx, key); err != nil {
			m.logger().Warn("removing the replaced certificate", slog.String("key", key), slog.Any("err", err))
		}
	}
}

// busyRecheck is how long a due certificate another process is renewing
// (errLockBusy) waits before this one looks at it again: about an order's
// time, after which that process has stored the new certificate, or
// failed and marked it (renewalFailedElsewhere), or stopped, its lock's
// lease running out. A certificate with less than four times that left
// is looked at after a quarter of what is left (a second at least).
const busyRecheck = 30 * time.Second

// policyRecheck is how long a due on-demand certificate whose name the
// policy refuses waits before the policy is asked again.
const policyRecheck = time.Hour

// refusedByPolicy reports whether the on-demand certificate under key,
// due now, is not renewed because the policy refuses its name now (the
// name was taken out of the allowlist, the ask endpoint says no): it is
// asked again in an hour, so that a refusal that does not last (an ask
// endpoint that was down, a DNS answer for RequireOwnIP) delays the
// renewal by an hour, and a lasting one lets the certificate expire (the
// expiry sweep then removes it). Certificates obtained through Cert, and
// on-demand wildcards (obtained for the names under them, which the
// policy allowed), are not the policy's to refuse.
func (m *Manager) refusedByPolicy(ctx context.Context, key string, rec *storage.Certificate) bool {
	if !rec.OnDemand || m.Policy == nil || strings.HasPrefix(rec.Names[0], "*.") {
		return false
	}
	err := m.Policy.Decide(ctx, rec.Names[0])
	if err == nil {
		m.renew.mu.Lock()
		delete(m.renew.refused, key)
		m.renew.mu.Unlock()
		return false
	}
	if ctx.Err() != nil {
		return true // closing
	}
	m.renew.mu.Lock()
	if m.renew.refused == nil {
		m.renew.refused = map[string]struct{}{}
	}
	m.renew.refused[key] = struct{}{}
	m.renew.mu.Unlock()
	next := time.Now().Add(policyRecheck)
	m.scheduler().Schedule(key, next)
	m.logger().Info("certificate not renewed: the policy does not allow its name now; asking again in an hour",
		slog.Any("names", rec.Names), slog.Time("not_after", rec.NotAfter), slog.Time("next_check", next), slog.Any("err", err))
	return true
}

// retryLater schedules the next attempt after a failed renewal, honouring
// a CA's Retry-After, and reports it.
func (m *Manager) retryLater(key string, rec *storage.Certificate, err error) {
	if m.ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Cut short by Close: no failure of the renewal's to store, log
		// or alert on (a trial's SIGTERM left one in status); the next
		// start renews it.
		return
	}
	m.renew.mu.Lock()
	m.renew.attempts[key]++
	attempt := m.renew.attempts[key]
	m.renew.mu.Unlock()
	steps := attempt
	if _, ok := errors.AsType[*loadError](err); ok {
		steps = min(attempt, loadFailedSteps)
		m.noteLoadFailed(key)
	}
	c := renewal.Cert{}
	var names []string
	if rec != nil {
		c.NotBefore, c.NotAfter, names = rec.NotBefore, rec.NotAfter, rec.Names
	}
	var retryAfter time.Time
	var ierr *issuer.Error
	if errors.As(err, &ierr) {
		retryAfter = ierr.RetryAfter
	}
	next := renewal.Backoff(steps, c, time.Now(), retryAfter, nil)
	if s := m.scheduler(); s != nil && m.ctx.Err() == nil {
		s.Schedule(key, next)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), 10*time.Second)
	defer cancel()
	m.noteRenewal(ctx, key, names, err, next, attempt)
	// Warn while the certificate has time left; Error once it counts as
	// expiring (status.IsExpiring) or has expired: then it needs a person.
	level, msg := slog.LevelWarn, "renewal failed; will retry"
	switch now := time.Now(); {
	case rec != nil && !now.Before(c.NotAfter) && m.held(key) != nil:
		level, msg = slog.LevelError, "renewal failed and the certificate has expired (served until one is renewed); will retry"
	case rec != nil && !now.Before(c.NotAfter):
		// Read from storage, not in memory: a handshake does not serve it.
		level, msg = slog.LevelError, "renewal failed and the certificate has expired (not served: a handshake for its names orders a new one); will retry"
	case rec != nil && status.IsExpiring(c.NotBefore, c.NotAfter, now, true):
		level, msg = slog.LevelError, "renewal failed and the certificate expires soon; will retry"
	}
	// A certificate this node does not hold in memory (scheduled from
	// storage, and storage unreadable) has no names or dates here: its
	// key says which it is, and no empty names nor zero not_after says
	// it expired in year 1.
	attrs := []any{slog.String("key", key), slog.Int("attempt", attempt), slog.Time("retry_at", next)}
	if rec != nil {
		attrs = append([]any{slog.Any("names", names)}, append(attrs, slog.Time("not_after", c.NotAfter))...)
	}
	m.logger().Log(context.Background(), level, msg, append(attrs, slog.Any("err", err))...)
	m.emit(Event{Kind: RenewalFailed, Names: names, NotAfter: c.NotAfter, Retry: next, Err: m.explain(err)})
}

// unused reports whether the on-demand certificate under key, whose
// primary name is name, has not been asked for in a handshake for longer
// than UnusedAfter: by the entry in memory, else by the last-seen time
// kept for the name. A name with no last-seen time counts as used.
func (m *Manager) unused(key, name string, now time.Time) bool {
	var s int64
	if e := m.held(key); e != nil {
		s = e.lastSeen.Load()
	} else {
		s = m.seenAt(name)
	}
	if s == 0 {
		return false
	}
	return now.Sub(time.Unix(s, 0)) > m.unusedAfter()
}

// released is called for each entry that left a cache (evicted or
// replaced): it drops the renewal state's reference to it, so that its
// certificate, key and leaf become garbage, keeping its names and dates
// (storedDates), and keeps its last-seen time. The key stays scheduled.
func (m *Manager) released(left []*managed) {
	for _, e := range left {
		e.left.Store(true)
		m.renew.mu.Lock()
		if m.renew.held[e.key] == e {
			delete(m.renew.held, e.key)
			m.renew.noteHeld(e)
		}
		m.renew.mu.Unlock()
		m.noteSeen(e.names[0], e.lastSeen.Load())
	}
}

// dropFromMemory removes e from its cache, as if evicted: a certificate
// renewed in the background without a handshake asking for it.
func (m *Manager) dropFromMemory(e *managed, variant string) {
	c := m.cacheFor(variant)
	if c.get(e.names[0]) != e {
		return
	}
	c.remove(e)
	m.released([]*managed{e})
}

// forget stops renewing key.
func (m *Manager) forget(key string) {
	m.others.forget(key)
	if s := m.scheduler(); s != nil {
		s.Remove(key)
	}
	m.renew.mu.Lock()
	delete(m.renew.held, key)
	delete(m.renew.stored, key)
	delete(m.renew.storedNames, key)
	delete(m.renew.damaged, key)
	delete(m.renew.attempts, key)
	delete(m.renew.planned, key)
	delete(m.renew.letGo, key)
	delete(m.renew.loadFailed, key)
	delete(m.renew.refused, key)
	m.renew.mu.Unlock()
}

// inWindow reports whether t lies in w, or before it (a time already
// chosen earlier than a moved window stays: renewing early is safe).
func inWindow(t time.Time, w renewal.Window) bool {
	return !t.After(w.End)
}

// issuerByID returns the issuer with this ID that name may use, or nil.
func (m *Manager) issuerByID(name, id string) issuer.Issuer {
	for _, iss := range m.allIssuers(name) {
		if iss.ID() == id {
			return iss
		}
	}
	return nil
}
