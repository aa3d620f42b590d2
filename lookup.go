package certkeeper

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/limit"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
)

// Served is a certificate as CertificateFor returns it: what a handshake
// for the name would be served, and where it came from.
type Served struct {
	// Certificate is the certificate with its key and parsed Leaf. It is
	// shared and must not be modified.
	Certificate *tls.Certificate
	// Names are the names the certificate covers (normalised; the first
	// is the primary name). Shared: do not modify.
	Names []string
	// SelfSigned reports a self-signed fallback certificate
	// (Manager.SelfSignedFallback), trusted by no client.
	SelfSigned bool
	// Manual reports a certificate from Manager.CertFiles.
	Manual bool
}

// PolicyError is returned for a name the Policy refused (or, with no
// Policy, that no policy allows). Limits and recent failures are not
// policy decisions: they give an *UnavailableError from CertificateFor.
type PolicyError struct {
	Name string
	Err  error
}

func (e *PolicyError) Error() string { return e.Err.Error() }

// Unwrap returns the policy's error (it matches policy.ErrDenied or
// ErrNoPolicy).
func (e *PolicyError) Unwrap() error { return e.Err }

// UnavailableError is returned by CertificateFor when a name may have a
// certificate but none can be served now: issuance failed, is backing off
// after failures, or did not finish in time.
type UnavailableError struct {
	Name string
	// RetryAfter is when asking again is worthwhile.
	RetryAfter time.Time
	Err        error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("no certificate for %s yet (retry after %s): %v", e.Name, e.RetryAfter.UTC().Format(time.RFC3339), e.Err)
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Reason says, in a few words for a client of a certificate server, which
// of the usual causes it is, without the detail (addresses, the CA's
// messages) that Error carries for the log.
func (e *UnavailableError) Reason() string {
	var rl *limit.RateLimitError
	switch {
	case errors.Is(e.Err, errNoLock):
		return "the certificate storage cannot be reached"
	case errors.Is(e.Err, ErrFailedRecently):
		return "its last issuance failed, and the next attempt waits"
	case errors.Is(e.Err, ErrClientLimit):
		return "too many new names from this client"
	case errors.As(e.Err, &rl) && rl.Configured:
		return "the server's own limit on new orders (" + rl.Limit + ") is reached until " + rl.RetryAt.UTC().Format(time.RFC3339)
	case errors.Is(e.Err, issuer.ErrRateLimited):
		return "the CA rate-limited the order"
	case errors.Is(e.Err, acmeca.ErrUnreachable):
		return "the CA cannot be reached"
	case errors.Is(e.Err, acmeca.ErrNotDirectory):
		return "the CA's directory URL answers no ACME directory"
	case errors.Is(e.Err, ErrClosed):
		return "the server is stopping"
	case errors.Is(e.Err, context.DeadlineExceeded):
		return "its issuance is still in progress"
	}
	return "its issuance failed"
}

// defaultRetryAfter is the RetryAfter of an UnavailableError whose cause
// names no time: an issuance that timed out goes on, so asking again soon
// is worthwhile.
const defaultRetryAfter = 10 * time.Second

// inProgressRetryAfter is the RetryAfter of a wait that ended while the
// issuance goes on: the certificate is often there a second later, and a
// client (the nginx plugin) serves its fallback until it asks again.
const inProgressRetryAfter = 2 * time.Second

// Cached returns the certificate for name if it is in memory (obtained,
// loaded or a CertFiles certificate), without I/O, lock or allocation;
// name must already be normalised to be found. It lets a front-end skip
// the set-up of a wait (a context with a deadline) that only CertificateFor
// on a miss needs.
func (m *Manager) Cached(name string) (Served, bool) {
	if m.init() != nil {
		return Served{}, false
	}
	if e := m.cache.get(name); e != nil {
		e.touch(time.Now())
		return Served{Certificate: e.serve(), Names: e.names}, true
	}
	if e := m.manual.get(name, nil); e != nil {
		return Served{Certificate: e.serve(), Names: e.names, Manual: true}, true
	}
	return Served{}, false
}

// LastSeen returns when a handshake last asked for the certificate in
// memory whose primary name is name (to the second), or zero when none is
// held. Storage has these times too (status.LoadState), written every few
// minutes and at Close; this is the current one, for a status page served
// by the same process.
func (m *Manager) LastSeen(name string) time.Time {
	if m.init() != nil {
		return time.Time{}
	}
	var last int64
	for _, c := range []*certCache{m.cache, m.rsaCache} {
		if e := c.get(name); e != nil && len(e.names) > 0 && e.names[0] == name {
			last = max(last, e.lastSeen.Load())
		}
	}
	if last == 0 {
		return time.Time{}
	}
	return time.Unix(last, 0)
}

// CertificateFor returns the certificate a handshake for name would get,
// for front-ends that hand certificates out rather than terminate TLS
// (the certificate server). It takes the same path as GetCertificate —
// memory, CertFiles, storage, then Policy and issuance, waiting as long
// as ctx allows — with client as the address that counts against
// ClientLimit. Errors: a *hostname.NameError for an invalid name, a
// *PolicyError for a refused one, ctx's error if it is done before
// anything is asked (nothing is ordered then), an *UnavailableError
// otherwise. With
// SelfSignedFallback, a refused or unavailable name gets a self-signed
// certificate instead of the error. name may be an IP address, for an IP
// certificate, as for DefaultName.
//
// A certificate in memory is returned without a lock or allocation.
func (m *Manager) CertificateFor(ctx context.Context, name string, client netip.Addr) (Served, error) {
	if s, ok := m.Cached(name); ok {
		return s, nil
	}
	if err := m.init(); err != nil {
		return Served{}, err
	}
	norm, err := hostname.Normalizer{AllowIP: true}.Normalize(name)
	if err != nil {
		return Served{}, err
	}
	if s, ok := m.Cached(norm); ok {
		return s, nil
	}
	if err := ctx.Err(); err != nil {
		return Served{}, err // nobody waits (a client gone): nothing is ordered
	}
	e, err := m.onDemand(ctx, norm, "", client)
	if err != nil {
		if c := m.selfSignedFor(norm, false); c != nil {
			return Served{Certificate: c.serve(), Names: c.names, SelfSigned: true}, nil
		}
		var pe *PolicyError
		if errors.As(err, &pe) {
			return Served{}, err
		}
		return Served{}, &UnavailableError{Name: norm, RetryAfter: m.retryAfter(norm, err), Err: err}
	}
	e.touch(time.Now())
	return Served{Certificate: e.serve(), Names: e.names}, nil
}

// retryAfter is when a name whose issuance failed with err is worth
// asking for again: the CA's Retry-After, the end of the name's failure
// backoff, or soon.
func (m *Manager) retryAfter(name string, err error) time.Time {
	now := time.Now()
	at := now.Add(defaultRetryAfter)
	if errors.Is(err, context.DeadlineExceeded) {
		at = now.Add(inProgressRetryAfter)
	}
	var ierr *issuer.Error
	if errors.As(err, &ierr) && ierr.RetryAfter.After(at) {
		at = ierr.RetryAfter
	}
	// An order budget: nothing is ordered before it refills. At most an
	// hour: a budget that never refills (a zero rate) would tell a client
	// to wait for ever.
	var rl *limit.RateLimitError
	if errors.As(err, &rl) && rl.RetryAt.After(at) {
		at = rl.RetryAt
		if longest := now.Add(time.Hour); at.After(longest) {
			at = longest
		}
	}
	if ok, retry := m.lim.failures.Allowed(name, now); !ok && retry.After(at) {
		at = retry
	}
	return at
}
