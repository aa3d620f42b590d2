package limit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"golang.org/x/time/rate"
)

// Let's Encrypt's "New Orders per Account" limit
// (https://letsencrypt.org/docs/rate-limits/), the budget a CALimiter
// spends by default: 300 orders per account per 3 hours, as a token bucket
// that holds 300 and refills one order every 36 s. Renewals that carry an
// ARI "replaces" are exempt at Let's Encrypt; a CALimiter cannot tell
// which orders those are, so a caller that wants them to spend nothing
// does not Take for them.
const (
	// LetsEncryptOrderBurst is the size of Let's Encrypt's bucket of new
	// orders per account: 300.
	LetsEncryptOrderBurst = 300
	// LetsEncryptOrderRate is the rate at which that bucket refills: one
	// order every 36 s, 300 per 3 hours.
	LetsEncryptOrderRate rate.Limit = 1.0 / 36
)

// RateLimitError reports an action held back by one of certkeeper's own
// rate limits, and when it may be tried again. It matches
// issuer.ErrRateLimited, the one sentinel for "held back by a rate limit,
// try again later" whether the CA answered rateLimited or certkeeper kept
// within the CA's limit before ordering, and not policy.ErrDenied.
type RateLimitError struct {
	// Limit says which limit: "new orders per CA account", "failed
	// authorizations".
	Limit string
	// Name is the name held back, for a limit per name; "" otherwise.
	Name string
	// RetryAt is the earliest time the action may succeed.
	RetryAt time.Time
	// Configured reports a limit of the operator's configuration (the
	// cluster's order limit), not one that keeps within the CA's.
	Configured bool
}

// Error returns "rate limited: new orders per CA account: retry at
// 2026-01-02T15:04:05Z", with " for NAME" after the limit when Name is set.
func (e *RateLimitError) Error() string {
	at := e.RetryAt.UTC().Format(time.RFC3339)
	if e.Name != "" {
		return fmt.Sprintf("rate limited: %s for %s: retry at %s", e.Limit, e.Name, at)
	}
	return fmt.Sprintf("rate limited: %s: retry at %s", e.Limit, at)
}

// Is makes errors.Is(err, issuer.ErrRateLimited) true for every
// *RateLimitError.
func (e *RateLimitError) Is(target error) bool { return target == issuer.ErrRateLimited }

const (
	// caLimit is the Limit of the errors CALimiter returns.
	caLimit = "new orders per CA account"
	// forever is the wait for a budget that does not refill.
	forever = 100 * 365 * 24 * time.Hour
)

// CALimiter keeps the new orders placed with one CA account within the
// CA's published limit: a token bucket of Burst orders refilled at Rate.
// The zero value spends Let's Encrypt's budget, 300 orders at once and one
// more every 36 s, so a burst of first handshakes (fifty new names in a
// row) is never held back while the account stays within what the CA
// allows; a small fixed rate (CertMagic's 10 per 10 s) would hold every
// eleventh name for seconds and protect nothing the CA does not.
//
// Use one CALimiter per CA account, shared by every issuance that uses
// it: first issuance and renewal. The handshake path calls Take, which
// never waits; background renewal calls Wait. When the CA itself answers
// "rate limited", call Pause with its Retry-After: the CA's count includes
// orders this process did not see (other nodes, earlier runs).
//
// A CALimiter must not be copied or have its fields changed after first
// use. It is safe for concurrent use.
type CALimiter struct {
	// Rate is the steady rate, in orders per second. Zero means
	// LetsEncryptOrderRate (one per 36 s); rate.Inf means no limit.
	Rate rate.Limit
	// Burst is how many orders may be placed at once, the size of the
	// bucket. Zero means LetsEncryptOrderBurst (300).
	Burst int

	mu     sync.Mutex // guards lim and paused
	lim    *rate.Limiter
	paused time.Time // no orders before this time (the CA's Retry-After)
}

// Take spends one order from the budget if one is available now and
// returns nil; otherwise it spends nothing and returns a *RateLimitError
// (matching issuer.ErrRateLimited) saying when one will be. It never waits: a
// handshake should fail fast rather than hang for the next token.
func (l *CALimiter) Take() error {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.pausedAt(now); err != nil {
		return err
	}
	lim := l.limiter()
	if lim.AllowN(now, 1) {
		return nil
	}
	// Take never reserves ahead, so tokens stay in [0, 1) here: the
	// wait is the time to refill the rest of one token. A zero or
	// absurdly slow rate waits "forever", in a form that still prints.
	secs := (1 - lim.TokensAt(now)) / float64(lim.Limit())
	wait := forever
	if secs > 0 && secs < forever.Seconds() {
		wait = time.Duration(math.Ceil(secs * float64(time.Second)))
	}
	return &RateLimitError{Limit: caLimit, RetryAt: now.Add(wait)}
}

// Paused returns, while a Pause is in force, the *RateLimitError that says
// until when; else nil. It spends nothing: for a CA whose budget is not
// known, whose own rate-limit answers alone hold orders back.
func (l *CALimiter) Paused() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pausedAt(time.Now())
}

// pausedAt is Paused at now, with mu held.
func (l *CALimiter) pausedAt(now time.Time) error {
	if now.Before(l.paused) {
		return &RateLimitError{Limit: caLimit, RetryAt: l.paused}
	}
	return nil
}

// Wait spends one order from the budget, waiting until one is available.
// If ctx's deadline would pass first, it returns the *RateLimitError at
// once rather than wait in vain; if ctx ends while waiting, it returns an
// error wrapping ctx.Err(). Waiters poll at the time they were told, so
// a Pause during a wait is obeyed.
func (l *CALimiter) Wait(ctx context.Context) error {
	for {
		err := l.Take()
		var rl *RateLimitError
		if !errors.As(err, &rl) {
			return err
		}
		if deadline, ok := ctx.Deadline(); ok && deadline.Before(rl.RetryAt) {
			return err
		}
		t := time.NewTimer(time.Until(rl.RetryAt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("waiting for the CA order budget: %w", ctx.Err())
		}
	}
}

// Pause holds every order back until t, as a CA's rate-limit answer asks
// with its Retry-After, for MaxPause at most. A pause already in force is
// never shortened.
func (l *CALimiter) Pause(t time.Time) {
	if most := time.Now().Add(MaxPause); t.After(most) {
		t = most
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.paused) {
		l.paused = t.Round(0)
	}
}

// MaxPause bounds a pause, however far a Retry-After asks: a trial's CA
// answered one rate limit with a Retry-After of 32 years, and every new
// order to it, on every node sharing the state, was held back until 2058.
// Let's Encrypt's limits refill within days at most, and an order tried
// too early is refused again, which pauses again.
const MaxPause = 24 * time.Hour

// CALimiterState is the state of a CALimiter, to keep across restarts so
// that a crash loop cannot spend the CA's budget again on every start.
// It encodes with encoding/json.
type CALimiterState struct {
	// Tokens is the number of orders that could be placed at At.
	Tokens float64 `json:"tokens"`
	// At is when Tokens was measured.
	At time.Time `json:"at"`
	// PausedUntil is the end of a pause (Pause), if any.
	PausedUntil time.Time `json:"paused_until,omitzero"`
}

// State returns the budget left now.
func (l *CALimiter) State() CALimiterState {
	now := time.Now().Round(0)
	l.mu.Lock()
	defer l.mu.Unlock()
	return CALimiterState{Tokens: l.limiter().TokensAt(now), At: now, PausedUntil: l.paused}
}

// Restore sets the budget to what s says was left at s.At, refilled at
// Rate since, and resumes s's pause. It only ever lowers the budget: a
// state with more orders left than this CALimiter has changes nothing, so
// restoring a stale state cannot grant orders already spent.
func (l *CALimiter) Restore(s CALimiterState) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	until := s.PausedUntil
	if most := now.Add(MaxPause); until.After(most) { // stored before the bound
		until = most
	}
	if until.After(l.paused) {
		l.paused = until.Round(0)
	}
	lim := l.limiter()
	if s.At.IsZero() || lim.Limit() == rate.Inf {
		return
	}
	left := max(s.Tokens, 0)
	if elapsed := now.Sub(s.At); elapsed > 0 && lim.Limit() > 0 {
		left += elapsed.Seconds() * float64(lim.Limit())
	}
	// rate.Limiter cannot be told a token count; spending the
	// difference now leaves what s implies.
	if spend := math.Ceil(lim.TokensAt(now) - left); spend > 0 {
		lim.ReserveN(now, int(min(spend, float64(lim.Burst()))))
	}
}

// limiter returns the token bucket, creating it on first use. l.mu must
// be held.
func (l *CALimiter) limiter() *rate.Limiter {
	if l.lim == nil {
		r, b := l.Rate, l.Burst
		if r == 0 {
			r = LetsEncryptOrderRate
		}
		if b <= 0 {
			b = LetsEncryptOrderBurst
		}
		l.lim = rate.NewLimiter(r, b)
	}
	return l.lim
}
