package certkeeper

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/timeline"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
	"github.com/certkeeper/certkeeper/storage"
)

// GetCertificate returns the certificate for hello's server name, for
// tls.Config.GetCertificate. A certificate in memory is returned without a
// lock, I/O or allocation. Otherwise it is loaded from storage, or — if
// Policy allows the name — obtained from the issuers while the handshake
// waits (as long as hello's context allows; the issuance goes on, and later
// handshakes are served from memory). A tls-alpn-01 validation handshake
// gets its challenge certificate: a tls.Config of your own must list
// "acme-tls/1" (tlsalpn01.Protocol) in NextProtos for it, or the handshake
// fails before GetCertificate is called; TLSConfig does.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if err := m.init(); err != nil {
		return nil, err
	}
	if tlsalpn01.IsChallenge(hello) {
		return m.challengeCertificate(hello)
	}
	name := hello.ServerName
	var nz hostname.Normalizer // SNI never carries an IP address (RFC 6066 §3)
	if name == "" {
		if name = m.DefaultName; name == "" {
			return nil, m.refuseNoSNI()
		}
		// A client that connects to an IP address sends no SNI: the
		// DefaultName may be that address, for an IP certificate.
		nz.AllowIP = true
	}
	variant, cache := "", m.cache
	if m.RSAFallback && !supportsECDSA(hello) && m.rsaVariant(name) {
		variant, cache = variantRSA, m.rsaCache
	}
	if e := cache.get(name); e != nil {
		e.touch(time.Now())
		m.stats.memory.Add(1)
		return e.serve(), nil
	}
	norm, err := nz.Normalize(name)
	if err != nil {
		return nil, certError(name, err)
	}
	if norm != name {
		if e := cache.get(norm); e != nil {
			e.touch(time.Now())
			m.stats.memory.Add(1)
			return e.serve(), nil
		}
	}
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if e := m.manual.get(norm, hello); e != nil {
		m.stats.memory.Add(1) // a CertFiles certificate is in memory too
		return e.serve(), nil
	}
	e, err := m.onDemand(ctx, norm, variant, clientAddr(hello.Conn))
	if err != nil {
		if f := m.selfSignedFor(norm, !supportsECDSA(hello)); f != nil {
			return f.serve(), nil
		}
		return nil, certError(norm, err)
	}
	e.touch(time.Now())
	return e.serve(), nil
}

// ErrNoSNI is why a client that sends no server name (SNI) gets a
// handshake error: there is no DefaultName to serve it (the proxy's
// --default-name). Clients that connect by IP address, and scanners, send
// none.
var ErrNoSNI = errors.New("the client sent no server name (SNI) and no default name is set (Manager.DefaultName)")

// refuseNoSNI reports a handshake without SNI that nothing can serve as a
// refusal: a Denied event (the metrics count it as reason no_sni) and a
// log line, once per interval as for refused names, so that an operator
// whose clients connect by IP address learns why they fail.
func (m *Manager) refuseNoSNI() error {
	m.emit(Event{Kind: Denied, Names: []string{""}, Err: ErrNoSNI})
	m.logRefused("", ErrNoSNI)
	return ErrNoSNI
}

// onDemand loads or obtains the certificate for name, one flight per name:
// concurrent handshakes for a new name share one issuance. The leader runs
// on a context detached from any one handshake, bounded by IssueTimeout
// and ended by Close, which waits for it; each caller waits only as long
// as its own context allows, HandshakeWait if set, and never more than
// flightGrace past the issue timeout, even if the leader hangs.
func (m *Manager) onDemand(ctx context.Context, name, variant string, client netip.Addr) (*managed, error) {
	ch := m.flight.DoChan(variant+"/"+m.flightName(name), func() (any, error) {
		if !m.track() {
			return nil, ErrClosed
		}
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.issueTimeout())
		defer cancel()
		defer context.AfterFunc(m.ctx, cancel)() // Close abandons it; its lock is released before Close returns
		defer m.sayWhenSlow(name).Stop()
		var tl *timeline.Timeline
		if m.logger().Enabled(ctx, slog.LevelDebug) {
			tl = timeline.New()
			ctx = timeline.With(ctx, tl)
		}
		e, err := contain(m, "obtaining a certificate for", slog.String("name", name), func() (*managed, error) {
			return m.loadOrObtain(ctx, name, variant, client)
		})
		if err != nil && m.ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ErrClosed, err) // abandoned by Close
		}
		if tl != nil {
			m.logger().Debug("certificate for a handshake: timeline", slog.String("name", name),
				slog.Bool("ok", err == nil), slog.Any("steps_us", tl))
		}
		return e, err
	})
	// The flight is bounded by the issue timeout only where what it waits
	// on honours its context: a storage read that hangs (an NFS mount, a
	// server that stopped answering) or a hook that ignores it does not.
	// A handshake's own context often has no deadline (net/http's: the
	// connection's deadline ends reads and writes, not GetCertificate),
	// so a caller also stops waiting flightGrace after the issue timeout,
	// by when the flight should have ended; the flight goes on.
	limit := m.issueTimeout() + flightGrace
	short := m.HandshakeWait > 0 && m.HandshakeWait < limit
	if short {
		limit = m.HandshakeWait
	}
	wait := time.NewTimer(limit)
	defer wait.Stop()
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*managed), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		if short {
			return nil, fmt.Errorf("obtaining a certificate for %s: still in progress after %s, the longest a handshake waits for it (HandshakeWait); it goes on, and a later handshake gets its certificate (%w)",
				name, limit, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("obtaining a certificate for %s: no result %s after the issue timeout of %s (%w)",
			name, flightGrace, m.issueTimeout(), context.DeadlineExceeded)
	}
}

// sayWhenSlow logs, unless the returned timer is stopped first, that the
// issuance for name still runs: after slowIssue, half the issue timeout
// or HandshakeWait, whichever comes first (then with handshake_wait: the
// moment the handshakes stop waiting, which the log otherwise shows only
// at debug, in the TLS server's).
func (m *Manager) sayWhenSlow(name string) *time.Timer {
	after := min(slowIssue, m.issueTimeout()/2)
	attrs := []any{slog.String("name", name)}
	level, msg := slog.LevelInfo, "still obtaining a certificate; it goes on until the issue timeout"
	if m.HandshakeWait > 0 && m.HandshakeWait <= after {
		// The handshakes waiting fail now: clients see it (an ops trial's
		// hung CA showed as an Info line alone for 90 s).
		after = m.HandshakeWait
		attrs = append(attrs, slog.Duration("handshake_wait", m.HandshakeWait))
		level, msg = slog.LevelWarn, "handshakes fail while a certificate is still being obtained (the CA is slow or does not answer); it goes on until the issue timeout"
	}
	attrs = append(attrs, slog.Duration("for", after), slog.Duration("issue_timeout", m.issueTimeout()))
	return time.AfterFunc(after, func() {
		m.logger().Log(context.Background(), level, msg, attrs...)
	})
}

// slowIssue is how long an on-demand issuance runs (or half its issue
// timeout, or HandshakeWait, if shorter) before the log says it still does: a CA that stops
// answering otherwise left minutes with no line until its error (a
// trial's proxy waited three).
const slowIssue = 30 * time.Second

// flightGrace is how long after the issue timeout a handshake waits for
// the issuance it joined: long enough that the flight's own error (its
// timeout, with what it was doing) normally comes first.
const flightGrace = 2 * time.Second

// storageAnswers logs, once, that storage answers a handshake's load again
// after failing: an operator watching the log during an outage sees it end.
func (m *Manager) storageAnswers() {
	if m.loadFailing.Load() && m.loadFailing.CompareAndSwap(true, false) {
		m.logger().Info("storage answers again: new names are loaded and obtained again")
	}
}

// loadOrObtain is the slow path of a handshake: storage, then policy and
// limits, then issuance. client is the address of the handshake that
// leads the flight.
func (m *Manager) loadOrObtain(ctx context.Context, name, variant string, client netip.Addr) (*managed, error) {
	if e := m.cacheFor(variant).get(name); e != nil {
		return e, nil // filled while this flight was queued
	}
	if client.IsValid() {
		ctx = policy.WithClient(ctx, client) // for the policy (AskURL's share per client)
	}
	decided := false
	if m.policyFirst(name, variant) {
		if err := m.decide(ctx, name); err != nil {
			return nil, m.refuse(name, err)
		}
		decided = true
	}
	if e, err := m.loadStored(ctx, name, variant); err == nil {
		m.storageAnswers()
		m.stats.storage.Add(1)
		return e, nil
	} else if !isNotFound(err) {
		warn := func() { m.logger().Warn("loading stored certificate", "name", name, "err", err) }
		if !errors.Is(err, storage.ErrInvalidRecord) {
			// The storage failing: every new name would say the same. No
			// order without the issue lock, which this storage would have
			// to give: fail now rather than wait for it too.
			m.loadFailing.Store(true)
			m.loadWarn.Do(warn)
			return nil, fmt.Errorf("loading %s from storage (%w): %w", name, errNoLock, err)
		}
		warn() // a damaged record: named each time, for the operator to delete or replace
	} else {
		m.storageAnswers()
	}
	timeline.Mark(ctx, "storage_lookup")
	if !decided {
		if err := m.decide(ctx, name); err != nil {
			return nil, m.refuse(name, err)
		}
	}
	if e, err := m.loadUnderApex(ctx, name, variant); err == nil {
		m.stats.storage.Add(1)
		return e, nil
	}
	// A name a wildcard of Wildcards covers is ordered, backed off and
	// reported as that wildcard: one failing *.a.example is one order and
	// one status entry, not one per subdomain asked for.
	names := m.onDemandNames(name)
	if err := m.admit(ctx, names[0], client); err != nil {
		m.emit(Event{Kind: Denied, Names: []string{name}, Err: err})
		m.logRefused(name, err)
		return nil, err
	}
	timeline.Mark(ctx, "policy_limits")
	e, err := m.obtain(ctx, names, nil, nil, true, variant)
	switch {
	case err != nil && m.ctx.Err() == nil && errors.Is(err, errNoLock):
		m.loadWarn.Do(func() { // the storage is failing: paced as the load's warning
			m.logger().Warn("no issuance without the cluster-wide issue lock (logged at most every 10 s)", "name", name, "err", err)
		})
	case err != nil && m.ctx.Err() == nil && budgetRefusal(err):
		// The budget refused the order: not a failure of the name, which
		// is not backed off (the budget's own RetryAt holds it back). A
		// refusal all the same, which the metrics count (an ops trial's
		// order-limit refusals showed only in a line a minute).
		m.logBudget(names[0], err)
		m.emit(Event{Kind: Denied, Names: []string{name}, Err: err})
	case err != nil && m.ctx.Err() == nil:
		m.recordFailure(ctx, names[0], err)
	}
	m.noteFirstIssue(ctx, names, variant, err) // for status (failures.go)
	timeline.Mark(ctx, "status_note")
	if err == nil {
		m.stats.issued.Add(1)
	}
	return e, err
}

// refuse reports and returns the policy's refusal err of name.
func (m *Manager) refuse(name string, err error) error {
	m.emit(Event{Kind: Denied, Names: []string{name}, Err: err})
	m.logRefused(name, err)
	return &PolicyError{Name: name, Err: err}
}

// policyFirst reports whether a handshake for name, not in memory, should
// ask the policy before storage: beyond unknownLookupRate such handshakes
// a second, for a name this node knows of no stored certificate for (once
// the start-up scan has indexed what storage holds). Below the rate it
// costs a token of the limiter alone, no index lookup.
func (m *Manager) policyFirst(name, variant string) bool {
	return !m.lim.unknown.Allow() && !m.mayBeStored(name, variant)
}

// mayBeStored reports whether storage may hold a certificate for name as
// far as this node knows: before the start-up scan has ended, always;
// after, if a record it scanned, learnt of (learnStored), stored or let go
// is under name's key or its wildcard's, under any issuer, or holds name
// as an other name.
func (m *Manager) mayBeStored(name, variant string) bool {
	select {
	case <-m.renew.scanned:
	default:
		return true // not yet indexed (nil: no scan)
	}
	candidates := storedCandidates(name)
	var keys []string
	for _, n := range candidates {
		if _, ok := m.others.find(n, variant); ok {
			return true
		}
		for _, iss := range m.allIssuers(name) {
			if key, err := storage.CertificateKeyVariant(iss.ID(), n, variant); err == nil {
				keys = append(keys, key)
			}
		}
	}
	m.renew.mu.Lock()
	defer m.renew.mu.Unlock()
	for _, key := range keys {
		_, damaged := m.renew.damaged[key]
		_, letGo := m.renew.letGo[key]
		if m.renew.held[key] != nil || m.renew.stored[key] != nil || damaged || letGo {
			return true
		}
	}
	return false
}

// decide asks the policy whether name may be obtained on demand.
func (m *Manager) decide(ctx context.Context, name string) error {
	if m.Policy == nil {
		return ErrNoPolicy
	}
	return m.Policy.Decide(ctx, name)
}
