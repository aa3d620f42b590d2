// Package issuer defines how certkeeper gets a certificate signed: the
// Issuer interface, the typed error every issuer returns, key types, and a
// fallback Chain that tries issuers in order.
//
// An Issuer signs; it does not decide which names may have certificates
// (package policy), keep them (package storage) or renew them (the root
// package). Implementations: acmeca (any ACME CA, Let's Encrypt by
// default), localca (certkeeper's own CA for intranets and development),
// selfsigned (one self-signed certificate).
package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Issuer obtains a signed certificate chain for a CSR.
type Issuer interface {
	// ID is a stable, storage-safe identifier (storage.IssuerID of the
	// directory URL for an ACME CA, "local" for the local CA). Stored
	// certificates are keyed by it.
	ID() string

	// Issue returns a certificate for req.CSR, whose names must equal
	// req.Names. It blocks until the certificate is issued, ctx is done,
	// or the issuer gives up; failures are *Error.
	Issue(ctx context.Context, req Request) (*Certificate, error)
}

// Request is one certificate to issue.
type Request struct {
	// Names are the normalised identifiers (DNS names or IP literals), the
	// first being the primary name. They must match the CSR's.
	Names []string
	// CSR is the DER certificate request, signed by the certificate's key,
	// which stays with the caller.
	CSR []byte
	// Replaces is the certificate this one renews, if any. ACME issuers
	// send it as ARI "replaces" (RFC 9773 §5) and fall back to a plain
	// order if the CA refuses that.
	Replaces *x509.Certificate
	// ReplacesAccount is the URL of the ACME account that ordered
	// Replaces, if known. A CA accepts a replacement only from that
	// account (RFC 9773 §5): an ACME issuer orders from it when its
	// storage holds it at the same CA (an account imported beside the
	// issuer's own), and from its own account otherwise.
	ReplacesAccount string
	// Progress, if set, is called with short human-readable steps
	// ("order created", "validating a.test via http-01"), for CLIs.
	Progress func(step string)

	// Finalizing, if set, is called by an ACME issuer with the order it is
	// about to finalize: from that request on, the CA may sign the
	// certificate whether or not the issuer lives to see it. A caller that
	// keeps the order and the CSR's key durably can hand them back as
	// Resume after a crash, rather than order the same certificate again
	// (a CA counts every duplicate against its limits).
	Finalizing func(Order)

	// Resume, if set, is an order a previous attempt finalized and did not
	// see the end of, for the same names and the same key as CSR. The
	// issuer whose ID is Resume.Issuer fetches it first and returns its
	// certificate when the CA signed it (or signs it now: a ready order is
	// finalized with CSR); an order it cannot use (expired, invalid, from
	// another account, a certificate no newer than Replaces) is left
	// alone, and a new order is placed as without Resume.
	Resume *Order
}

// Order identifies an ACME order for Request.Finalizing and
// Request.Resume.
type Order struct {
	// Issuer is the ID of the issuer that placed it.
	Issuer string `json:"issuer"`
	// URL is the order's URL at the CA.
	URL string `json:"url"`
	// Account is the URL of the ACME account that placed it: only that
	// account may fetch it.
	Account string `json:"account"`
}

// Certificate is an issued chain.
type Certificate struct {
	// ChainPEM is the PEM chain, leaf first.
	ChainPEM []byte
	// Leaf is the parsed leaf.
	Leaf *x509.Certificate
	// Issuer is the ID of the issuer that signed it.
	Issuer string
	// URL is the ACME certificate URL ("" for non-ACME issuers).
	URL string
	// Account is the ACME account URL that ordered it ("" for non-ACME).
	Account string
	// Email is the email that account is stored under
	// (storage.AccountKey): what an acmeca.Issuer's Email must be to use
	// it again (to revoke the certificate, say); "" for the account
	// without a contact, and for non-ACME issuers.
	Email string
	// Profile is the ACME profile it was ordered with, if any.
	Profile string
	// RenewalWindow is the renewal window the CA suggested for it as it
	// was issued (ACME Renewal Information, RFC 9773), if it offered one.
	RenewalWindow *Window
}

// Window is a CA's suggested renewal window (RFC 9773): renew at some
// time from Start to End.
type Window struct {
	Start, End time.Time
	// ExplanationURL is the CA's page about the window, if any.
	ExplanationURL string
	// RetryAfter is when the CA asks to be asked again, if it said.
	RetryAfter time.Time
}

// Error is the error every issuer returns: what it was asked for, who
// refused, and when to try again.
type Error struct {
	// Issuer is the ID of the issuer that failed.
	Issuer string
	// Names are the names that were requested.
	Names []string
	// RetryAfter, if not zero, is the earliest time the issuer will accept
	// another attempt (a CA's rateLimited answer, a Retry-After header).
	RetryAfter time.Time
	// Err is the cause: an acme.Problem from the CA, a network error, ...
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "issuing %s via %s: %v", strings.Join(e.Names, ", "), e.Issuer, e.Err)
	if !e.RetryAfter.IsZero() {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter.UTC().Format(time.RFC3339))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ErrRateLimited is certkeeper's one sentinel for "held back by a rate
// limit; try again later": errors.Is(err, ErrRateLimited) holds both when
// a CA answered rateLimited (then an *Error wrapping it carries
// RetryAfter) and when the Manager held an order back to keep within the
// CA's limit for the account or the cluster's shared order cap (its error
// says when to retry).
var ErrRateLimited = errors.New("rate limited by the CA")

// ErrNameRejected is wrapped by the error of an issuer that will not issue
// for a name at all: an ACME CA's rejectedIdentifier answer (its policy
// forbids the name: a blocklisted domain, a public suffix, an IP address
// it does not certify). Trying again does not help; the name must be taken
// out of what is asked for. The Manager holds such a name back from
// on-demand issuance for an hour rather than a minute.
var ErrNameRejected = errors.New("the CA will not issue for this name")
