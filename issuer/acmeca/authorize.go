package acmeca

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certkeeper/certkeeper/internal/timeline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/solver"
)

// Polling of an authorization once its challenge is accepted. With a solver
// that reports the CA's validation request, the first poll follows it by
// pollFirst: the CA cannot have finished at the moment its first request
// reaches the solver (it still has that handshake to complete, and Pebble
// validates from 3 perspectives, Let's Encrypt from several), and a poll
// that is sure to find the authorization pending only takes the CA's CPU
// from the validation (on a shared 2-core machine, Pebble's own).
//
// The first polls come every pollFirst for pollQuick polls — a CA that
// validates from several perspectives finishes a few milliseconds after the
// first request reaches the solver — then the interval doubles to pollCap.
// That costs at most pollQuick extra requests per authorization at a CA
// that takes longer (Let's Encrypt allows 250 requests a second per IP).
const (
	pollFirst   = time.Millisecond
	pollQuick   = 10
	pollCap     = time.Second
	answerWait  = 2 * time.Second // how long to wait for the solver before polling anyway
	authzMaxAge = 3 * time.Minute // give up on an authorization that stays pending
	cleanupTime = 30 * time.Second
)

// challengeTask is one authorization being validated.
type challengeTask struct {
	authz  acme.Authorization
	chal   acme.Challenge
	solver solver.Solver
}

// authorize completes every pending authorization of order: all challenges
// are presented, then all are accepted at once, then each is awaited. What
// was presented is cleaned up whatever happens.
func (iss *Issuer) authorize(ctx context.Context, client *acme.Client, acct acme.Account, order acme.Order, req issuer.Request) error {
	var tasks []challengeTask
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTime)
		defer cancel()
		for _, t := range tasks {
			if err := t.solver.CleanUp(cctx, t.chal); err != nil {
				iss.logger().Warn("cleaning up challenge", slog.String("name", t.authz.IdentifierValue()),
					slog.String("challenge", t.chal.Type), slog.Any("err", err))
			}
		}
		timeline.Mark(ctx, "challenge_cleanup")
	}()

	// An order with a wildcard is validated through DNS for its wildcard
	// anyway: its other names (the apex) use DNS too, so that the order
	// needs one working path, not port 443 or 80 as well.
	dnsFirst := slices.ContainsFunc(order.Identifiers, func(id acme.Identifier) bool { return strings.HasPrefix(id.Value, "*.") })
	for _, url := range order.Authorizations {
		var authz acme.Authorization
		err := iss.do(ctx, "fetching authorization", func(ctx context.Context) error {
			var err error
			authz, err = client.GetAuthorization(ctx, acct, url)
			return err
		})
		if err != nil {
			return fmt.Errorf("fetching authorization %s: %w", url, err)
		}
		timeline.Mark(ctx, "authz_fetch")
		switch authz.Status {
		case acme.StatusValid:
			progress(req, "%s is already authorized", authz.IdentifierValue())
			continue
		case acme.StatusPending:
		default:
			return fmt.Errorf("authorization for %s is %s", authz.IdentifierValue(), authz.Status)
		}
		chal, s, err := iss.pickChallenge(ctx, authz, acct, dnsFirst)
		if err != nil {
			return err
		}
		if err := s.Present(ctx, chal); err != nil {
			return fmt.Errorf("presenting %s challenge for %s: %w", chal.Type, authz.IdentifierValue(), err)
		}
		timeline.Mark(ctx, "challenge_present")
		tasks = append(tasks, challengeTask{authz: authz, chal: chal, solver: s})
	}

	// Solvers that set something up elsewhere (DNS records) wait for it
	// only now, when every record of the order is in place.
	for _, t := range tasks {
		if w, ok := t.solver.(solver.Waiter); ok {
			if err := w.Wait(ctx, t.chal); err != nil {
				return fmt.Errorf("waiting for the %s challenge for %s: %w", t.chal.Type, t.authz.IdentifierValue(), err)
			}
		}
	}

	// Accept every challenge before waiting on any, so the CA validates
	// them in parallel.
	for i := range tasks {
		t := &tasks[i]
		progress(req, "validating %s via %s", t.authz.IdentifierValue(), t.chal.Type)
		err := iss.do(ctx, "accepting challenge", func(ctx context.Context) error {
			_, err := client.InitiateChallenge(ctx, acct, t.chal)
			if err != nil && iss.accepted(ctx, client, acct, t) {
				return nil // an earlier request got through, its reply lost
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("accepting %s challenge for %s: %w", t.chal.Type, t.authz.IdentifierValue(), err)
		}
	}
	timeline.Mark(ctx, "challenge_accept")
	for _, t := range tasks {
		if err := iss.awaitAuthz(ctx, client, acct, t); err != nil {
			return err
		}
		progress(req, "%s validated", t.authz.IdentifierValue())
	}
	return nil
}

// accepted reports whether the CA has taken up t's challenge, for a
// request to accept it that failed: the request (or one acmez repeated)
// may have reached the CA and its reply been lost, and the CA refuses to
// accept a challenge twice ("Cannot update challenge with status valid").
// awaitAuthz then waits for the outcome as after any accept.
func (iss *Issuer) accepted(ctx context.Context, client *acme.Client, acct acme.Account, t *challengeTask) bool {
	authz, err := client.GetAuthorization(ctx, acct, t.authz.Location)
	if err != nil {
		return false
	}
	if authz.Status != acme.StatusPending {
		return true
	}
	for _, c := range authz.Challenges {
		if c.URL == t.chal.URL {
			return c.Status == acme.StatusProcessing || c.Status == acme.StatusValid
		}
	}
	return false
}

// pickChallenge chooses the first challenge in the preference order that
// the CA offers and a solver can answer (a Chooser solver must also
// agree); dnsFirst puts the DNS-based challenges first.
func (iss *Issuer) pickChallenge(ctx context.Context, authz acme.Authorization, acct acme.Account, dnsFirst bool) (acme.Challenge, solver.Solver, error) {
	var declined []error // why Chooser solvers declined a challenge the CA offers
	for _, typ := range iss.challengeOrder(dnsFirst) {
		s := iss.Solvers[typ]
		if s == nil {
			continue
		}
		for _, c := range authz.Challenges {
			if c.Type != typ {
				continue
			}
			if ch, ok := s.(solver.Chooser); ok {
				use, err := ch.Choose(ctx, c, solver.Authorization{Account: acct.Location, Wildcard: authz.Wildcard})
				if err != nil {
					iss.logger().Debug("challenge not usable", slog.String("name", authz.IdentifierValue()),
						slog.String("challenge", typ), slog.Any("err", err))
					declined = append(declined, fmt.Errorf("%s cannot be used: %w", typ, err))
				}
				if !use {
					break
				}
			}
			return c, s, nil
		}
	}
	var offered []string
	for _, c := range authz.Challenges {
		offered = append(offered, c.Type)
	}
	have := slices.Sorted(maps.Keys(iss.Solvers))
	if len(declined) > 0 {
		// A solver for a challenge the CA offers could not use it (no
		// dns-persist-01 record): why is the news, not the list.
		return acme.Challenge{}, nil, fmt.Errorf("%w for %s (certkeeper is set up to answer %s): %w",
			ErrNoChallenge, authz.IdentifierValue(), strings.Join(have, ", "), errors.Join(declined...))
	}
	return acme.Challenge{}, nil, fmt.Errorf("%w: the CA offers %s for %s, but certkeeper is set up to answer only %s: put one it offers in ChallengeOrder",
		ErrNoChallenge, strings.Join(offered, ", "), authz.IdentifierValue(), strings.Join(have, ", "))
}

// challengeOrder is ChallengeOrder or its default, with the DNS-based
// challenges moved first (in their order) when dnsFirst.
func (iss *Issuer) challengeOrder(dnsFirst bool) []string {
	order := iss.ChallengeOrder
	if len(order) == 0 {
		order = []string{DNSPersist01, TLSALPN01, HTTP01, DNS01}
	}
	if !dnsFirst {
		return order
	}
	isDNS := func(typ string) bool { return typ == DNS01 || typ == DNSPersist01 }
	first := slices.DeleteFunc(slices.Clone(order), func(typ string) bool { return !isDNS(typ) })
	return append(first, slices.DeleteFunc(slices.Clone(order), isDNS)...)
}

// ValidatesWildcards reports whether iss can answer a wildcard name's
// challenge: it has a dns-01 or dns-persist-01 solver (among
// ChallengeOrder's, when that is set). certkeeper.Manager.Start asks it of
// the issuers of each of its Wildcards.
func (iss *Issuer) ValidatesWildcards() bool {
	return iss.checkWildcards([]string{"*.wildcard.invalid"}) == nil
}

// checkWildcards refuses a wildcard name before anything is ordered when
// no DNS-based solver is set up: CAs validate wildcards only through DNS
// (RFC 8555 §7.1.3; Let's Encrypt and Pebble offer nothing else).
func (iss *Issuer) checkWildcards(names []string) error {
	for _, n := range names {
		if !strings.HasPrefix(n, "*.") {
			continue
		}
		for _, typ := range iss.challengeOrder(true) {
			if (typ == DNS01 || typ == DNSPersist01) && iss.Solvers[typ] != nil {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is a wildcard, which the CA validates only through DNS: dns-01 is needed (in ChallengeOrder, with its solver in Solvers), not %s",
			ErrWildcardNeedsDNS, n, strings.Join(slices.Sorted(maps.Keys(iss.Solvers)), ", "))
	}
	return nil
}

// ErrWildcardNeedsDNS is returned (wrapped) when a wildcard name is asked
// for and no dns-01 solver is configured; no order is placed.
var ErrWildcardNeedsDNS = errors.New("wildcard needs dns-01")

// awaitAuthz waits for the CA to finish validating t: first for the
// solver to see the CA's request (when it can tell), then polling on a
// short capped backoff that never polls sooner than a Retry-After asks.
func (iss *Issuer) awaitAuthz(ctx context.Context, client *acme.Client, acct acme.Account, t challengeTask) error {
	name := t.authz.IdentifierValue()
	ctx, cancel := context.WithTimeout(ctx, authzMaxAge)
	defer cancel()
	if a, ok := t.solver.(solver.Answerer); ok {
		if ch := a.Answered(t.chal); ch != nil {
			timer := time.NewTimer(answerWait)
			answered := false
			select {
			case <-ch:
				answered = true
			case <-timer.C:
			case <-ctx.Done():
			}
			timer.Stop()
			timeline.Mark(ctx, "validation_wait")
			if answered {
				if err := sleep(ctx, pollFirst); err != nil {
					return fmt.Errorf("validating %s via %s: the CA did not finish in time: %w", name, t.chal.Type, err)
				}
			}
		}
	}
	delay := pollFirst
	for polls := 1; ; polls++ {
		var authz acme.Authorization
		rec := &retryAfter{}
		err := iss.do(ctx, "polling authorization", func(ctx context.Context) error {
			var err error
			authz, err = client.GetAuthorization(context.WithValue(ctx, retryAfterKey{}, rec), acct, t.authz.Location)
			return err
		})
		if err != nil {
			return fmt.Errorf("polling authorization for %s: %w", name, err)
		}
		switch authz.Status {
		case acme.StatusValid:
			timeline.Mark(ctx, "authz_poll")
			return nil
		case acme.StatusPending, acme.StatusProcessing:
		default:
			return authzError(authz, t.chal.Type)
		}
		wait := delay
		if ra := rec.get(); !ra.IsZero() && time.Until(ra) > wait {
			wait = time.Until(ra)
		}
		if err := sleep(ctx, wait); err != nil {
			return fmt.Errorf("validating %s via %s: the CA did not finish in time: %w", name, t.chal.Type, err)
		}
		if polls >= pollQuick {
			delay = min(delay*2, pollCap)
		}
	}
}

// ValidationError is returned when the CA could not validate a name: it
// names the name, the challenge type and carries the CA's problem.
type ValidationError struct {
	Name      string
	Challenge string
	Status    string
	Problem   *acme.Problem
}

func (e *ValidationError) Error() string {
	if e.Problem != nil {
		msg := fmt.Sprintf("validating %s via %s: %s: %s", e.Name, e.Challenge, e.Problem.Type, strings.TrimSpace(e.Problem.Detail))
		if advice := e.Advice(); advice != "" {
			msg += " (" + advice + ")"
		}
		return msg
	}
	return fmt.Sprintf("validating %s via %s: authorization is %s", e.Name, e.Challenge, e.Status)
}

// dialedPort finds the port a CA's problem says it connected to ("dial tcp
// 127.0.0.1:5002: connect: connection refused", "Failed to connect to
// 192.0.2.7:443 for the tls-alpn-01 challenge").
var dialedPort = regexp.MustCompile(`(?:dial tcp|connect to) \S*:(\d{1,5})[: ]|https?://[^/\s:]+:(\d{1,5})/`)

// Advice says what to check for the most common validation failures, in
// a few words, or "" when the CA's problem says it all: a name that does
// not resolve, a port the CA cannot connect to, an answer from another
// server, a DNS record the CA does not see, a CAA record that forbids the
// CA.
func (e *ValidationError) Advice() string {
	if e.Problem == nil {
		return ""
	}
	typ := strings.TrimPrefix(e.Problem.Type, "urn:ietf:params:acme:error:")
	detail := strings.ToLower(e.Problem.Detail)
	port := map[string]string{HTTP01: "80", TLSALPN01: "443"}[e.Challenge]
	if m := dialedPort.FindStringSubmatch(e.Problem.Detail); port != "" && m != nil {
		port = m[1] + m[2] // a test CA's own port (Pebble's httpPort): "port 80" sent a trial looking at the wrong one
	}
	switch {
	case typ == "caa":
		return "a CAA record of " + e.Name + " or a parent domain does not allow this CA: add one that does, or remove it"
	case typ == "dns" || strings.Contains(detail, "could not resolve") || strings.Contains(detail, "nxdomain") ||
		strings.Contains(detail, "no valid a records") || strings.Contains(detail, "no such host"):
		if e.Challenge == DNS01 || e.Challenge == DNSPersist01 {
			return "the CA's DNS lookup failed: check that the zone of " + e.Name + " is delegated to the DNS server the record was set on"
		}
		return e.Name + " does not resolve at the CA: give it a public A or AAAA record pointing at this host"
	case port != "" && (typ == "connection" || strings.Contains(detail, "connection refused") ||
		strings.Contains(detail, "failed to connect") || strings.Contains(detail, "timeout") || strings.Contains(detail, "timed out")):
		where := "its DNS points at this host"
		if net.ParseIP(e.Name) != nil {
			where = "this host has that address, the answer listens on it"
		}
		advice := "the CA could not connect to " + e.Name + " on port " + port + ": check that " + where + ", " +
			"and that port " + port + " reaches the " + e.Challenge + " answer through firewalls, NAT and port forwards"
		if e.Challenge == TLSALPN01 {
			advice += ", and that the TLS server there offers the ALPN protocol acme-tls/1"
		}
		return advice
	case e.Challenge == HTTP01 && (typ == "unauthorized" || typ == "incorrectResponse"):
		return "the CA got another answer for the token on port " + port + ": " + e.Name + " must point at this host, and what answers " +
			"on port " + port + " must be this answer (is it listening there?), or a web server that serves the token from the " +
			"directory it is written to, or forwards /.well-known/acme-challenge/ here"
	case (e.Challenge == DNS01 || e.Challenge == DNSPersist01) && (typ == "unauthorized" || typ == "incorrectResponse"):
		return "the CA did not see the TXT record it expected: check that it is set on the DNS server that is authoritative for " + e.Name +
			" (a CNAME of _acme-challenge is followed) and has propagated"
	}
	return ""
}

// Unwrap returns the CA's problem, so errors.As finds an acme.Problem.
func (e *ValidationError) Unwrap() error {
	if e.Problem == nil {
		return nil
	}
	return *e.Problem
}

func authzError(authz acme.Authorization, typ string) error {
	verr := &ValidationError{Name: authz.IdentifierValue(), Challenge: typ, Status: authz.Status}
	for _, c := range authz.Challenges {
		if c.Error != nil {
			verr.Challenge = c.Type
			verr.Problem = c.Error
			break
		}
	}
	return verr
}
