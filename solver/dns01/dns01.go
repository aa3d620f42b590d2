// Package dns01 answers ACME dns-01 challenges (RFC 8555 §8.4) through a
// DNS provider, and dns-persist-01 (draft-ietf-acme-dns-persist) from a
// record set once.
//
// DNS validation is the only way to obtain wildcard certificates, and the
// way for names whose servers the CA cannot reach. The Solver sets the
// _acme-challenge TXT record through a Provider — any libdns provider
// module (github.com/libdns), or one of the sub-packages: rfc2136 (dynamic
// updates with TSIG, for BIND, Knot, PowerDNS), powerdns (PowerDNS's HTTP
// API) and exec (a program of yours) — follows a CNAME on the challenge name to a delegated zone
// (acme-dns style), waits until every authoritative nameserver of the zone
// serves the value, and removes the record afterwards.
//
// It does not choose which names may be issued, nor hold the provider's
// credentials beyond the Provider value the caller builds.
package dns01

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"
)

// Provider adds and deletes DNS records: the libdns contract, which any
// libdns provider module implements. AppendRecords must add a TXT value
// next to those already there (a wildcard and its apex have two values on
// one name); DeleteRecords must remove only the value given.
type Provider interface {
	libdns.RecordAppender
	libdns.RecordDeleter
}

// ChallengeProvider is an optional interface of a Provider that wants the
// challenge behind each record, not only the record: the exec provider in
// lego's RAW mode, whose program computes the TXT value from the key
// authorization itself. When the Provider implements it, the Solver calls
// PresentChallenge and CleanUpChallenge instead of AppendRecords and
// DeleteRecords.
type ChallengeProvider interface {
	PresentChallenge(ctx context.Context, c ChallengeRecord) error
	CleanUpChallenge(ctx context.Context, c ChallengeRecord) error
}

// AccessChecker is an optional interface of a Provider that can tell,
// changing nothing, whether it would be allowed to set the TXT record
// named record (fully qualified, with a trailing dot) in zone (with a
// trailing dot): its credentials, the zone at the server and, where the
// server grants them per name, the record's name. Solver.Check calls it.
type AccessChecker interface {
	CheckAccess(ctx context.Context, zone, record string) error
}

// ChallengeRecord is one dns-01 TXT record and the challenge it answers.
type ChallengeRecord struct {
	// Zone holds the record, with a trailing dot.
	Zone string
	// Record is the TXT record, its name relative to Zone (at the end of
	// any CNAME chain from _acme-challenge.Domain).
	Record libdns.Record
	// Domain is the identifier being validated, without the "*." of a
	// wildcard and without a trailing dot, as lego passes it.
	Domain string
	// Token is the challenge's token.
	Token string
	// KeyAuthorization is TOKEN.THUMBPRINT (RFC 8555 §8.1); the TXT value
	// is its SHA-256 digest in unpadded base64url.
	KeyAuthorization string
}

// Defaults of the Solver's zero fields.
const (
	defaultTTL                 = 60 * time.Second
	defaultPropagationTimeout  = 2 * time.Minute
	defaultPropagationInterval = time.Second
	// waitingEvery is how often at most Wait reports that it still waits
	// (Solver.OnWaiting).
	waitingEvery = 5 * time.Second
)

// Solver answers dns-01 challenges through Provider. Set the fields before
// first use; it is safe for concurrent use.
//
// It implements solver.Waiter: Present sets the record and returns, and
// Wait waits for it to propagate, so an issuer sets every record of an
// order before it waits for any.
type Solver struct {
	// Provider sets and removes the records. Required.
	Provider Provider

	// Resolver says where records are looked up: the resolvers that find
	// the zone and the nameservers, and the port of the nameservers.
	Resolver Resolver

	// TTL of the challenge records. Zero means 60 s.
	TTL time.Duration

	// PropagationTimeout bounds how long Wait waits for every
	// authoritative nameserver to serve the record. Zero means 2 minutes.
	// Wait gives up sooner when every nameserver refuses the connection
	// 3 checks in a row: nothing listens at the address and port asked
	// (often Resolver.AuthoritativePort), which waiting does not change.
	// A nameserver that times out is waited for: that may be packet loss.
	PropagationTimeout time.Duration

	// PropagationInterval is the pause between checks. Zero means 1 s.
	PropagationInterval time.Duration

	// SkipPropagationCheck makes Wait return at once: for providers whose
	// nameservers cannot be queried from here (split-horizon DNS), where
	// the CA sees the record anyway.
	SkipPropagationCheck bool

	// OnWaiting, if set, is told while Wait waits for a record: after a
	// check that found it missing from some nameserver, at most every 5
	// s, so that a person watching knows what the wait (up to
	// PropagationTimeout) is for. Nil logs the same at Info through
	// Logger. Several Waits may call it at once.
	OnWaiting func(Waiting)

	// Logger receives the solver's logs. Nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex        // guards records and warned
	records map[string]record // challenge URL → what Present set
	warned  map[string]bool   // records outside Resolver.Zones warned of (warnZone)
}

// record is one TXT value set by Present.
type record struct {
	fqdn  string // where it is: the challenge name, or its CNAME target
	zone  string // the zone holding fqdn
	value string
	chal  acme.Challenge
}

func (r record) challenge(ttl time.Duration) ChallengeRecord {
	return ChallengeRecord{Zone: r.zone, Record: r.libdns(ttl), Domain: strings.TrimSuffix(r.chal.Identifier.Value, "."),
		Token: r.chal.Token, KeyAuthorization: r.chal.KeyAuthorization}
}

func (r record) libdns(ttl time.Duration) libdns.Record {
	return libdns.TXT{Name: libdns.RelativeName(r.fqdn, r.zone), TTL: ttl, Text: r.value}
}

func (s *Solver) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Solver) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return defaultTTL
}

// Present sets the TXT record of chal through the provider, at the end of
// any CNAME chain from its _acme-challenge name. It does not wait for the
// record to propagate: Wait does.
func (s *Solver) Present(ctx context.Context, chal acme.Challenge) error {
	if s.Provider == nil {
		return errors.New("dns01: Solver.Provider is nil: set a DNS provider")
	}
	name := chal.DNS01TXTRecordName()
	target, err := s.Resolver.target(ctx, name)
	if err != nil {
		return fmt.Errorf("looking up CNAME of %s: %w", name, err)
	}
	zone, err := s.Resolver.zone(ctx, target)
	if err != nil {
		return err
	}
	s.warnZone(chal.Identifier.Value, target, zone)
	rec := record{fqdn: target, zone: zone, value: chal.DNS01KeyAuthorization(), chal: chal}
	if cp, ok := s.Provider.(ChallengeProvider); ok {
		err = cp.PresentChallenge(ctx, rec.challenge(s.ttl()))
	} else {
		_, err = s.Provider.AppendRecords(ctx, zone, []libdns.Record{rec.libdns(s.ttl())})
	}
	if err != nil {
		s.cleanUpFailed(ctx, rec, err)
		return fmt.Errorf("setting TXT record %s in zone %s: %w", target, zone, err)
	}
	s.mu.Lock()
	if s.records == nil {
		s.records = make(map[string]record)
	}
	s.records[chal.URL] = rec
	s.mu.Unlock()
	s.logger().Debug("dns-01 record set", slog.String("name", chal.Identifier.Value),
		slog.String("record", strings.TrimSuffix(target, ".")), slog.String("zone", zone))
	return nil
}

// warnZone logs, once per record, that the record target (for name) is
// in none of Resolver.Zones when they are given, and which zone was looked
// up instead: a mistyped zone shows before an order (Check), not only at
// the first record set.
func (s *Solver) warnZone(name, target, zone string) {
	if len(s.Resolver.Zones) == 0 || s.Resolver.knownZone(target) != "" {
		return
	}
	s.mu.Lock()
	seen := s.warned[target]
	if s.warned == nil {
		s.warned = map[string]bool{}
	}
	s.warned[target] = true
	s.mu.Unlock()
	if !seen {
		s.logger().Warn("dns-01 record is in none of the zones given; its zone was looked up",
			slog.String("name", name), slog.String("record", strings.TrimSuffix(target, ".")),
			slog.Any("zones", s.Resolver.Zones), slog.String("zone", zone))
	}
}

// Check finds, as Present would, where the dns-01 record for name goes (a
// CNAME on _acme-challenge followed, then its zone), and asks the Provider,
// if it is an AccessChecker, whether it may set records there. Nothing is
// set. It is for before an order: a wrong key, zone or DNS server is then
// found without an order placed (and left pending at the CA) for each
// attempt. A wildcard is checked as the name under it.
func (s *Solver) Check(ctx context.Context, name string) error {
	if s.Provider == nil {
		return errors.New("dns01: Solver.Provider is nil: set a DNS provider")
	}
	loc, err := s.Locate(ctx, name)
	if err != nil {
		return err
	}
	s.warnZone(name, loc.Record, loc.Zone)
	ac, ok := s.Provider.(AccessChecker)
	if !ok {
		return nil
	}
	if err := ac.CheckAccess(ctx, loc.Zone, loc.Record); err != nil {
		return fmt.Errorf("checking that TXT record %s can be set in zone %s: %w", loc.Record, loc.Zone, err)
	}
	return nil
}

// Location is where the dns-01 record of a name goes.
type Location struct {
	Record string // the TXT record, fully qualified: _acme-challenge.NAME, or where its CNAME points
	Zone   string // the zone that holds it, fully qualified
	// Given is the one of Resolver.Zones that holds Record, "" when none
	// does (or none are given) and Zone was looked up.
	Given string
}

// Locate finds, as Present would, where the dns-01 record for name goes:
// a CNAME on _acme-challenge followed, then its zone. Nothing is set. A
// wildcard is located as the name under it.
func (s *Solver) Locate(ctx context.Context, name string) (Location, error) {
	fqdn := "_acme-challenge." + dns.Fqdn(strings.TrimPrefix(name, "*."))
	target, err := s.Resolver.target(ctx, fqdn)
	if err != nil {
		return Location{}, fmt.Errorf("looking up CNAME of %s: %w", fqdn, err)
	}
	zone, err := s.Resolver.zone(ctx, target)
	if err != nil {
		return Location{}, err
	}
	return Location{Record: target, Zone: zone, Given: s.Resolver.knownZone(target)}, nil
}

// Wait returns once every authoritative nameserver of the record's zone
// serves the value Present set, or fails after PropagationTimeout with an
// error naming the record and what each nameserver answered.
func (s *Solver) Wait(ctx context.Context, chal acme.Challenge) error {
	if s.SkipPropagationCheck {
		return nil
	}
	s.mu.Lock()
	rec, ok := s.records[chal.URL]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("dns01: Wait for %s before Present", chal.DNS01TXTRecordName())
	}
	timeout := s.PropagationTimeout
	if timeout <= 0 {
		timeout = defaultPropagationTimeout
	}
	interval := s.PropagationInterval
	if interval <= 0 {
		interval = defaultPropagationInterval
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last []answer
	var lastErr error
	var reported time.Time
	// servedOnce are the nameservers that served the value at some check:
	// one that then did not answer (a busy server, a lost datagram) still
	// has it, and the error blames those that never served it.
	servedOnce := map[string]bool{}
	var known []nameserver // those the last check that found them asked
	refused := 0           // checks in a row in which every nameserver lacking the value refused (hopeless)
	unfound := 0           // checks in a row in which the nameservers could not be found
	for {
		answers, err := s.check(wctx, rec, &known)
		if err == nil && !anyMissing(answers) {
			s.logger().Debug("dns-01 record propagated", slog.String("record", strings.TrimSuffix(rec.fqdn, ".")),
				slog.Duration("took", time.Since(start)))
			return nil
		}
		cut := wctx.Err() != nil // a check the timeout cut short: the one before says more
		if lastErr == nil && last == nil || !cut {
			last, lastErr = answers, err
		}
		for _, a := range answers {
			if a.err == nil && a.served {
				servedOnce[a.where] = true
			}
		}
		missing, errs := missingOf(answers)
		if !cut && (reported.IsZero() || time.Since(reported) >= waitingEvery) {
			reported = time.Now()
			s.waiting(Waiting{Record: strings.TrimSuffix(rec.fqdn, "."), Missing: missing, Errs: errs, Err: joinAnswers(answers, err),
				Waited: time.Since(start), Timeout: timeout})
		}
		// Every nameserver refusing the connection is no propagation
		// delay: nothing listens at those addresses. A few rounds rule
		// out a server restarting; then waiting out the timeout only
		// hides the error (trial 19).
		// Nor are nameservers that the resolvers answer they cannot find:
		// they do not know the zone (one only its primary serves, or a
		// mistyped resolver), and no wait changes that. A resolver that
		// times out may be slow: it is waited for.
		switch {
		case !cut && err == nil && hopeless(answers, servedOnce):
			refused++
		case !cut && err != nil && ctx.Err() == nil && !timedOut(err):
			unfound++
		default:
			refused, unfound = 0, 0
		}
		if refused >= refusedRoundsMax || unfound >= refusedRoundsMax {
			e := s.propagationError(rec, timeout, answers, err, servedOnce)
			e.FailedFast = true
			return e
		}
		t := time.NewTimer(interval)
		select {
		case <-t.C:
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil { // the caller's deadline, not ours: say where the wait stood
				if why := joinAnswers(last, lastErr); why != nil {
					return fmt.Errorf("waiting for TXT record %s to propagate (%v): %w", strings.TrimSuffix(rec.fqdn, "."), why, ctx.Err())
				}
				return fmt.Errorf("waiting for TXT record %s to propagate: %w", strings.TrimSuffix(rec.fqdn, "."), ctx.Err())
			}
			return s.propagationError(rec, timeout, last, lastErr, servedOnce)
		}
	}
}

// refusedRoundsMax is how many checks in a row in which every nameserver
// refused the connection make Wait give up before PropagationTimeout.
const refusedRoundsMax = 3

func (s *Solver) propagationError(rec record, timeout time.Duration, answers []answer, err error, servedOnce map[string]bool) *PropagationError {
	e := &PropagationError{Record: strings.TrimSuffix(rec.fqdn, "."), Value: rec.value, Timeout: timeout,
		Err: joinAnswers(answers, err), Primary: s.Resolver.primary()}
	if err != nil {
		return e
	}
	for _, a := range answers {
		switch {
		case a.err == nil && a.served, servedOnce[a.where]:
			e.Served = append(e.Served, a.where)
		case a.err == nil:
			e.Lacking = append(e.Lacking, a.where)
		case unreachable(a.err):
			e.Unreachable = append(e.Unreachable, a.addr)
		case refusing(a.err):
			e.Lacking = append(e.Lacking, a.where)
			e.Refusing = append(e.Refusing, a.where)
		default:
			e.Lacking = append(e.Lacking, a.where)
		}
	}
	return e
}

// answer is what one nameserver said at one check.
type answer struct {
	where  string // "NAME (ADDR)"
	addr   string // host:port
	served bool   // it serves the value
	values int    // how many TXT values it has there
	err    error  // the query failed, or got an error rcode
}

// check asks every authoritative nameserver of rec's zone for the record:
// those of *known when the resolvers cannot name them this time, and
// *known becomes the ones asked. err is set when the nameservers could not
// be found.
func (s *Solver) check(ctx context.Context, rec record, known *[]nameserver) ([]answer, error) {
	nss, err := s.Resolver.checkServers(ctx, rec.zone, *known)
	if err != nil {
		return nil, err
	}
	*known = nss
	out := make([]answer, 0, len(nss))
	for _, ns := range nss {
		a := answer{where: fmt.Sprintf("%s (%s)", strings.TrimSuffix(ns.name, "."), ns.addr), addr: ns.addr}
		vals, err := txt(ctx, ns.addr, rec.fqdn)
		a.err, a.values, a.served = err, len(vals), err == nil && contains(vals, rec.value)
		out = append(out, a)
	}
	return out, nil
}

func anyMissing(answers []answer) bool {
	return slices.ContainsFunc(answers, func(a answer) bool { return !a.served })
}

// missingOf returns the nameservers that lack the value, as "NAME
// (ADDR)", and for each the error that its query failed with, or nil.
func missingOf(answers []answer) (missing []string, errs []error) {
	for _, a := range answers {
		if !a.served {
			missing, errs = append(missing, a.where), append(errs, a.err)
		}
	}
	return missing, errs
}

// joinAnswers is what the nameservers lacking the value said, as one
// error; err (the nameservers not found) when set.
func joinAnswers(answers []answer, err error) error {
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range answers {
		switch {
		case a.served:
		case a.err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", a.where, a.err))
		default:
			errs = append(errs, fmt.Errorf("%s does not serve the value yet (it has %d TXT values there)", a.where, a.values))
		}
	}
	return errors.Join(errs...)
}

// hopeless reports whether every nameserver that has not served the value
// (one at least) refused the connection (nothing listens at its address
// and port) or the query (REFUSED, NOTAUTH: it does not serve the zone),
// whatever the others serve: no wait changes either. A DNS trial waited
// the whole timeout while the primary, which had the record, answered and
// every nameserver of the zone refused.
func hopeless(answers []answer, servedOnce map[string]bool) bool {
	lacking := 0
	for _, a := range answers {
		if a.served || servedOnce[a.where] {
			continue
		}
		if lacking++; !errors.Is(a.err, syscall.ECONNREFUSED) && !refusing(a.err) {
			return false
		}
	}
	return lacking > 0
}

// timedOut reports whether err is a query that got no answer in time.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// unreachable reports whether err is a query that got no answer
// (connection refused, timed out), not an answer with an error rcode.
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
}

// brief is the root cause of a failed query, short enough for a line
// repeated every 5 s: "connection refused", "timed out", or the error.
func brief(err error) string {
	var errno syscall.Errno
	var ne net.Error
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return err.Error()
}

// Waiting is where a wait for a dns-01 record stands: what
// Solver.OnWaiting is told.
type Waiting struct {
	// Record is the FQDN without trailing dot, e.g.
	// _acme-challenge.a.example (or the end of its CNAME chain).
	Record string
	// Missing are the nameservers that do not serve the value yet, as
	// "ns1.a.example (192.0.2.1:53)"; none when they could not be found.
	Missing []string
	// Errs[i] is why Missing[i] lacks the value when its query failed
	// (connection refused, timed out, an error rcode); nil when it
	// answered without the value.
	Errs []error
	// Err is what the last check found, for each nameserver missing.
	Err error
	// Waited is how long Wait has waited; Timeout is when it gives up.
	Waited, Timeout time.Duration
}

// String is w as one line: "waiting for _acme-challenge.a.example TXT at
// ns1.a.example (192.0.2.1:53); 10s so far (up to 2m0s)", each
// nameserver whose query failed followed by why: "ns1.a.example
// (192.0.2.1:53): connection refused".
func (w Waiting) String() string {
	at := make([]string, len(w.Missing))
	for i, m := range w.Missing {
		at[i] = m
		if i < len(w.Errs) && w.Errs[i] != nil {
			at[i] += ": " + brief(w.Errs[i])
		}
	}
	where := "at " + strings.Join(at, ", ")
	if len(w.Missing) == 0 {
		where = fmt.Sprintf("(%v)", w.Err)
	}
	return fmt.Sprintf("waiting for %s TXT %s; %s so far (up to %s)", w.Record, where, w.Waited.Round(time.Second), w.Timeout)
}

// waiting reports w to OnWaiting, or logs it.
func (s *Solver) waiting(w Waiting) {
	if s.OnWaiting != nil {
		s.OnWaiting(w)
		return
	}
	s.logger().Info("waiting for dns-01 record to reach every authoritative nameserver", slog.String("record", w.Record),
		slog.Any("missing", w.Missing), slog.Duration("waited", w.Waited), slog.Duration("timeout", w.Timeout), slog.Any("err", w.Err))
}

// CleanUp deletes the record Present set. It is a no-op for a challenge
// that was not presented, and for one whose Present failed: Present has
// cleaned up after itself.
func (s *Solver) CleanUp(ctx context.Context, chal acme.Challenge) error {
	s.mu.Lock()
	rec, ok := s.records[chal.URL]
	delete(s.records, chal.URL)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.delete(ctx, rec)
}

// delete has the provider remove rec.
func (s *Solver) delete(ctx context.Context, rec record) error {
	var err error
	if cp, ok := s.Provider.(ChallengeProvider); ok {
		err = cp.CleanUpChallenge(ctx, rec.challenge(s.ttl()))
	} else {
		_, err = s.Provider.DeleteRecords(ctx, rec.zone, []libdns.Record{rec.libdns(s.ttl())})
	}
	if err != nil {
		return fmt.Errorf("deleting TXT record %s in zone %s: %w", strings.TrimSuffix(rec.fqdn, "."), rec.zone, err)
	}
	return nil
}

// cleanupTimeout bounds the cleanup after a failed Present, which runs
// when the caller's context may have ended (an interrupt), as the issuer's
// own cleanup of presented challenges does.
const cleanupTimeout = 30 * time.Second

// cleanUpFailed has the provider remove rec after setting it failed or was
// interrupted: the provider may have set it before it failed (a hook that
// called its DNS host's API, then exited 1 or was killed while it waited),
// and nobody else will remove it, as no caller cleans up a challenge whose
// Present failed. lego and certbot clean up after a failed present too, so
// their hooks expect the call. Deleting a value that is not there is no
// error for the providers (RFC 2136 deletes nothing; libdns's contract).
// A failure is logged, not returned: the error that matters is Present's
// (setErr). One for the reason setting it failed (a key or an update the
// server refused) is logged at debug: nothing was set, and a warning that
// a record was left behind misled a trial.
func (s *Solver) cleanUpFailed(ctx context.Context, rec record, setErr error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.delete(ctx, rec); err != nil {
		level, msg := slog.LevelWarn, "dns-01 record not removed after setting it failed"
		if cause := errors.Unwrap(err); cause != nil && setErr != nil && cause.Error() == setErr.Error() {
			level, msg = slog.LevelDebug, "dns-01 record not removed after setting it failed, for the same reason: nothing was set"
		}
		s.logger().LogAttrs(ctx, level, msg, slog.String("name", rec.chal.Identifier.Value),
			slog.String("record", strings.TrimSuffix(rec.fqdn, ".")), slog.String("zone", rec.zone), slog.Any("err", err))
		return
	}
	s.logger().Debug("dns-01 record removed after setting it failed", slog.String("name", rec.chal.Identifier.Value),
		slog.String("record", strings.TrimSuffix(rec.fqdn, ".")), slog.String("zone", rec.zone))
}

// PropagationError says which record did not reach the zone's
// authoritative nameservers in time, what they answered last, and so
// what is likely wrong.
type PropagationError struct {
	Record  string // the FQDN without trailing dot, e.g. _acme-challenge.a.example
	Value   string
	Timeout time.Duration
	Err     error // what the nameservers answered at the last check

	// Served are the nameservers that served the value, Lacking those
	// that answered without it (or with an error rcode), as "NAME
	// (ADDR)"; Unreachable the addresses that gave no answer (connection
	// refused, timed out). All are empty when the nameservers could not
	// be found.
	Served, Lacking, Unreachable []string
	// Refusing are those of Lacking that answered REFUSED or NOTAUTH:
	// they do not serve the zone at the address and port asked.
	Refusing []string
	// Primary is Resolver.Primary as host:port, "" for none.
	Primary string
	// FailedFast is set when Wait gave up before Timeout because every
	// nameserver refused the connection, or the nameservers could not be
	// found (NotFound), check after check.
	FailedFast bool
}

// NotFound reports whether the zone's nameservers could not be found, so
// none was asked.
func (e *PropagationError) NotFound() bool {
	return len(e.Served) == 0 && len(e.Lacking) == 0 && len(e.Unreachable) == 0
}

func (e *PropagationError) Error() string {
	when := "within " + e.Timeout.String()
	switch {
	case e.FailedFast && e.NotFound(): // early, not at the timeout (a trial read "before 2m0s" as a 2-minute wait)
		when = "(the check gave up early, without waiting its " + e.Timeout.String() + "): its nameservers could not be found " + strconv.Itoa(refusedRoundsMax) + " checks in a row"
	case e.FailedFast:
		when = "(the check gave up early, without waiting its " + e.Timeout.String() + "): every nameserver lacking it refused the connection or the query " + strconv.Itoa(refusedRoundsMax) + " checks in a row"
	}
	return fmt.Sprintf("TXT record %s was not served by every authoritative nameserver %s (%s): %v", e.Record, when, e.advice(), e.Err)
}

// advice is what the nameservers' answers point at.
func (e *PropagationError) advice() string {
	var say []string
	if len(e.Served) > 0 {
		say = append(say, "served by "+strings.Join(e.Served, ", "))
	}
	if len(e.Unreachable) > 0 {
		a := "no answer from " + strings.Join(e.Unreachable, ", ") + ": is that the nameservers' address and port? " +
			"Resolver.AuthoritativePort sets the port they are asked on; SkipPropagationCheck skips the check where they cannot be reached from here (split horizon)"
		if ph, pp, err := net.SplitHostPort(e.Primary); err == nil {
			for _, u := range e.Unreachable {
				if h, p, err := net.SplitHostPort(u); err == nil && h == ph && p != pp {
					a += fmt.Sprintf("; the primary %s is on that host: is its port %s the nameservers' port?", e.Primary, pp)
					break
				}
			}
		}
		say = append(say, a)
	}
	if len(e.Refusing) > 0 {
		// No propagation delay: these servers do not have the zone, so
		// neither the provider nor a longer wait is to blame.
		refuse := " refuse queries for the zone (REFUSED or NOTAUTH), so they do not serve it"
		if len(e.Refusing) == 1 {
			refuse = " refuses queries for the zone (REFUSED or NOTAUTH), so it does not serve it"
		}
		say = append(say, strings.Join(e.Refusing, ", ")+refuse+": is that the nameservers' address and port? "+
			"Resolver.AuthoritativePort sets the port they are asked on; their addresses are those of the zone's NS records, "+
			"as the resolvers (Resolver.Servers) answer them")
	}
	lacking := slices.DeleteFunc(slices.Clone(e.Lacking), func(w string) bool { return slices.Contains(e.Refusing, w) })
	switch {
	case len(lacking) > 0 && len(e.Served) > 0:
		say = append(say, "not yet by "+strings.Join(lacking, ", ")+
			": do the secondaries get the change (zone transfer, NOTIFY)? Or raise PropagationTimeout")
	case len(lacking) > 0:
		say = append(say, "no nameserver that answered serves the value: is the provider changing the zone these nameservers serve? Or raise PropagationTimeout")
	}
	if len(say) == 0 {
		return "the zone's nameservers could not be found: the resolvers (Resolver.Servers) do not know them; " +
			"for a zone that only its primary serves give Resolver.Primary, which is asked too, or SkipPropagationCheck where this host cannot see them"
	}
	return strings.Join(say, "; ")
}

func (e *PropagationError) Unwrap() error { return e.Err }

// Zone returns the zone that holds name (a DNS name; a trailing dot is
// optional), with a trailing dot: one of r.Zones, or as the resolvers' or
// else the primary's SOA records say. It is the zone argument of a libdns
// provider for records under name. A name no server knows fails with a
// *ZoneError.
func (r *Resolver) Zone(ctx context.Context, name string) (string, error) {
	return r.zone(ctx, dns.Fqdn(name))
}
