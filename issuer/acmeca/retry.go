package acmeca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// Retry policy for one step of the order flow (a request the library has
// already retried in its own way: bad nonces up to 10 times, 5xx on
// POST-as-GET 3 times). A dead CA is reported within about two seconds:
// the callers retry whole issuances on their own schedule (the Manager's
// renewal backoff, scaled to the certificate's lifetime; the next
// handshake), and a 60-second certificate cannot afford a step that
// retries for ten.
const (
	retryFirst    = 100 * time.Millisecond
	retryCap      = 4 * time.Second
	retryAttempts = 4
)

// A rateLimited answer is waited out at most rateLimitWaits times in one
// step, each wait at least rateLimitMinWait, whatever its Retry-After
// says: a CA answering "Retry-After: 0" (or a date past) to every order
// had certkeeper send 1,200 orders a second until its timeout (a trial's
// fault-injecting proxy); then the step fails with the rate limit, which
// the callers back off from.
const (
	rateLimitWaits   = 2
	rateLimitMinWait = 2 * time.Second
)

// retryAfterKey is the context key under which a step's *retryAfter lives,
// so the HTTP transport can hand back the Retry-After header that the acme
// package does not expose with its errors.
type retryAfterKey struct{}

// retryAfter records the latest Retry-After a CA sent with an error answer
// during one step.
type retryAfter struct {
	mu sync.Mutex
	at time.Time
}

func (r *retryAfter) set(t time.Time) {
	r.mu.Lock()
	r.at = t
	r.mu.Unlock()
}

func (r *retryAfter) get() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at
}

// renewalInfoBudget bounds the renewalInfo (RFC 9773) requests of one
// certificate download. ARI is advice: the acme package asks for it inside
// the download, under the download's deadline, retrying twice, and a CA
// whose renewalInfo hung (a trial's fault-injecting proxy) held the signed
// certificate until the issuance's deadline had passed. Past the budget
// the certificate comes without a window (renewal falls back to its
// lifetime and asks for the window later), after at most the acme
// package's own 7 s of pauses between its attempts.
const renewalInfoBudget = 5 * time.Second

// ariBudgetKey is the context key under which a download's *ariBudget
// lives.
type ariBudgetKey struct{}

// ariBudget is the time the renewalInfo requests of one download may take
// together, counted from the first.
type ariBudget struct {
	mu  sync.Mutex
	max time.Duration
	end time.Time // zero until the first request
}

// deadline returns the end of the budget, starting it at now.
func (b *ariBudget) deadline(now time.Time) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end.IsZero() {
		b.end = now.Add(b.max)
	}
	return b.end
}

// withARIBudget returns ctx with a budget of max for its renewalInfo
// requests.
func withARIBudget(ctx context.Context, max time.Duration) context.Context {
	return context.WithValue(ctx, ariBudgetKey{}, &ariBudget{max: max})
}

// transport wraps the CA's HTTP transport to record Retry-After headers of
// error answers (RFC 8555 §6.6: rateLimited answers carry one) into the
// step's context, and to hold a download's renewalInfo requests to its
// budget.
type transport struct {
	base http.RoundTripper
	// directory is the directory URL: every other GET is a renewalInfo
	// request (the rest of ACME is POST-as-GET).
	directory string
}

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if b, ok := req.Context().Value(ariBudgetKey{}).(*ariBudget); ok && req.Method == http.MethodGet && req.URL.String() != t.directory {
		return t.renewalInfo(req, b)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	if rec, ok := req.Context().Value(retryAfterKey{}).(*retryAfter); ok {
		if at := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); !at.IsZero() {
			rec.set(at)
		}
	}
	return resp, nil
}

// renewalInfo sends a renewalInfo request within budget b, body
// included; past it, at once an error.
func (t transport) renewalInfo(req *http.Request, b *ariBudget) (*http.Response, error) {
	end := b.deadline(time.Now())
	if !time.Now().Before(end) {
		return nil, fmt.Errorf("the CA's renewalInfo did not answer within %s: the certificate is kept without its renewal window", b.max)
	}
	ctx, cancel := context.WithDeadline(req.Context(), end)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		if ctx.Err() != nil && req.Context().Err() == nil {
			return nil, fmt.Errorf("the CA's renewalInfo did not answer within %s: the certificate is kept without its renewal window: %w", b.max, err)
		}
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose is a response body that cancels its request's context
// when closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// parseRetryAfter parses a Retry-After value (seconds or an HTTP date)
// relative to now; invalid or absent values give the zero time.
func parseRetryAfter(v string, now time.Time) time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return time.Time{}
		}
		return now.Add(time.Duration(secs) * time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return t
	}
	return time.Time{}
}

// problemOf returns the ACME problem inside err, if any.
func problemOf(err error) (acme.Problem, bool) {
	var p acme.Problem
	if errors.As(err, &p) {
		return p, true
	}
	var pp *acme.Problem
	if errors.As(err, &pp) && pp != nil {
		return *pp, true
	}
	return acme.Problem{}, false
}

// rejectsName reports whether err is the CA's rejectedIdentifier answer,
// as the problem or one of its subproblems.
func rejectsName(err error) bool {
	p, ok := problemOf(err)
	if !ok {
		return false
	}
	if p.Type == acme.ProblemTypeRejectedIdentifier {
		return true
	}
	for _, sp := range p.Subproblems {
		if sp.Type == acme.ProblemTypeRejectedIdentifier {
			return true
		}
	}
	return false
}

// isProblem reports whether err carries an ACME problem of type typ.
func isProblem(err error, typ string) bool {
	p, ok := problemOf(err)
	return ok && p.Type == typ
}

// transient reports whether a failed step may succeed if sent again: a bad
// nonce the library gave up on, a CA-side 5xx, or a network failure other
// than a timeout. Context errors and every other ACME problem are final,
// and so is a timeout: a CA that did not answer within the HTTP client's
// time (a TLS handshake in 10 s, an answer in 30) hangs, the acme package
// has sent the request three times already, and each round more kept a
// renewal silent for half a minute (a trial's CA, stopped with SIGSTOP,
// was reported 2m13s after the renewal's start).
func transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if p, ok := problemOf(err); ok {
		return p.Type == acme.ProblemTypeBadNonce || p.Type == acme.ProblemTypeServerInternal || p.Status >= 500
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return !ne.Timeout()
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	msg := err.Error()
	// The acme package reports non-problem error answers as "HTTP 5xx: ...".
	return strings.HasPrefix(msg, "HTTP 5") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF")
}

// unreachableError is a request to the CA at where that failed for want
// of a connection (isNetworkError), after its retries.
type unreachableError struct {
	where, step string
	err         error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("%s at %s (%s): %s", ErrUnreachable, e.where, e.step, oneLine{e.err})
}

func (e *unreachableError) Unwrap() error { return e.err }

func (e *unreachableError) Is(target error) bool {
	return target == ErrUnreachable || target == ErrCANotTrusted && untrusted(e.err)
}

// untrusted reports whether err is the CA's HTTPS certificate failing
// verification.
func untrusted(err error) bool {
	return errors.As(err, new(x509.UnknownAuthorityError)) || errors.As(err, new(*tls.CertificateVerificationError)) ||
		errors.As(err, new(x509.CertificateInvalidError)) || errors.As(err, new(x509.HostnameError))
}

// isNetworkError reports whether err means the CA could not be reached
// at all (as opposed to an answer from it).
func isNetworkError(err error) bool {
	if _, ok := problemOf(err); ok {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || strings.Contains(err.Error(), "connection refused")
}

// rateLimitError is returned by do when the CA answered rateLimited and the
// caller does not wait (or the wait would outlast ctx).
type rateLimitError struct {
	until time.Time
	err   error
}

func (e *rateLimitError) Error() string { return e.err.Error() }
func (e *rateLimitError) Unwrap() error { return e.err }

// do runs one step of the order flow, retrying transient failures with
// capped exponential backoff and jitter, and waiting out a rateLimited
// answer until its Retry-After (unless noWait). what names the step in
// errors.
func (iss *Issuer) do(ctx context.Context, what string, step func(ctx context.Context) error) error {
	delay, rateWaits := retryFirst, 0
	for attempt := 1; ; attempt++ {
		rec := &retryAfter{}
		err := step(context.WithValue(ctx, retryAfterKey{}, rec))
		if err == nil {
			return nil
		}
		err = dropAttempts(err)
		if ctx.Err() != nil {
			return err
		}
		if isProblem(err, acme.ProblemTypeRateLimited) {
			until := rec.get()
			if until.IsZero() {
				until = time.Now().Add(time.Minute) // a rateLimited answer without Retry-After
			}
			if soonest := time.Now().Add(rateLimitMinWait); until.Before(soonest) {
				until = soonest
			}
			if rateWaits++; iss.NoWait || rateWaits > rateLimitWaits || !waitable(ctx, until) {
				return &rateLimitError{until: until, err: err}
			}
			iss.logger().Warn("rate limited by the CA; waiting",
				slog.String("issuer", iss.ID()), slog.String("step", what),
				slog.Time("retry_at", until), slog.Any("err", err))
			if err := sleep(ctx, time.Until(until)); err != nil {
				return err
			}
			continue
		}
		if !transient(err) || attempt >= retryAttempts {
			if isNetworkError(err) && !errors.Is(err, ErrUnreachable) {
				// ErrUnreachable at the first request (the directory) and
				// at any later one (a nonce, an order, a renewal's):
				// callers tell an outage from a refusal by it.
				return &unreachableError{where: iss.where(), step: what, err: err}
			}
			return err
		}
		wait := delay/2 + rand.N(delay/2+1)
		if ra := rec.get(); !ra.IsZero() && time.Until(ra) > wait {
			wait = time.Until(ra)
		}
		iss.logger().Debug("ACME step failed; retrying",
			slog.String("step", what), slog.Int("attempt", attempt),
			slog.Duration("retry_in", wait), slog.Any("err", err))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		delay = min(delay*2, retryCap)
	}
}

// attemptText is how the acme package counts its own tries of a request
// in its errors ("attempt 1: https://…/finalize-order/…: …").
var attemptText = regexp.MustCompile(`\battempt [0-9]+: `)

// dropAttempts returns err with the acme package's attempt counts left out
// of its text (errors.As and errors.Is see through it): the attempt at
// which the library gave up is no news to whoever reads the error, and
// certkeeper's own retries are logged.
func dropAttempts(err error) error {
	if !attemptText.MatchString(err.Error()) {
		return err
	}
	return withoutAttempts{err}
}

// withoutAttempts is dropAttempts' error.
type withoutAttempts struct{ err error }

func (e withoutAttempts) Error() string { return attemptText.ReplaceAllString(e.err.Error(), "") }
func (e withoutAttempts) Unwrap() error { return e.err }

// waitable reports whether ctx allows waiting until t.
func waitable(ctx context.Context, t time.Time) bool {
	dl, ok := ctx.Deadline()
	return !ok || dl.After(t)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
