package stapling

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/storage"
	"golang.org/x/crypto/ocsp"
)

// Limits and timings.
const (
	// maxResponse bounds the body read from a responder; real responses
	// are a few KiB.
	maxResponse = 64 << 10
	// fetchTimeout bounds one request to a responder when the caller's
	// context has no earlier deadline.
	fetchTimeout = 15 * time.Second
	// clockSkew is how far in the future a thisUpdate may be: responders'
	// and our clocks differ a little.
	clockSkew = 5 * time.Minute
	// noNextUpdate is how long a response without nextUpdate (RFC 6960
	// §2.4: "newer information is always available") is kept: it is
	// refreshed at half of it.
	noNextUpdate = time.Hour
	// minRefresh keeps a response that is already past its half-life
	// from being fetched again in a loop.
	minRefresh = 2 * time.Second
)

// ErrNoOCSP is returned for a certificate that names no OCSP responder
// (no http:// or https:// URL in its Authority Information Access).
var ErrNoOCSP = errors.New("certificate names no OCSP responder")

// StatusError reports a verified response whose status is not good: the
// certificate is revoked, or the responder does not know it. Such a
// response is never stapled.
type StatusError struct {
	Serial string // the certificate's serial number, hex
	Status int    // ocsp.Revoked or ocsp.Unknown
	// RevokedAt is when the certificate was revoked (Status ocsp.Revoked).
	RevokedAt time.Time
	// Reason is the RFC 5280 name of the revocation's reason
	// ("keyCompromise"; "unspecified" when the response gives none).
	Reason string
}

// reasonNames are the RFC 5280 §5.3.1 reason codes' names (7 is unused).
var reasonNames = []string{"unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
	"cessationOfOperation", "certificateHold", "", "removeFromCRL", "privilegeWithdrawn", "aACompromise"}

// reasonName is code's name, "unspecified" for a code RFC 5280 does not
// name.
func reasonName(code int) string {
	if code < 0 || code >= len(reasonNames) || reasonNames[code] == "" {
		return reasonNames[0]
	}
	return reasonNames[code]
}

func (e *StatusError) Error() string {
	switch e.Status {
	case ocsp.Revoked:
		return fmt.Sprintf("OCSP: certificate %s is revoked (%s, since %s)", e.Serial, cmp.Or(e.Reason, "unspecified"), e.RevokedAt.UTC().Format(time.RFC3339))
	case ocsp.Unknown:
		return fmt.Sprintf("OCSP: the responder does not know certificate %s", e.Serial)
	}
	return fmt.Sprintf("OCSP: certificate %s has status %d", e.Serial, e.Status)
}

// HasOCSP reports whether leaf names an OCSP responder this package can
// ask. It is the whole cost of stapling for certificates without one.
func HasOCSP(leaf *x509.Certificate) bool {
	return leaf != nil && responderURL(leaf) != ""
}

func responderURL(leaf *x509.Certificate) string {
	for _, u := range leaf.OCSPServer {
		if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			return u
		}
	}
	return ""
}

// oidTLSFeature is the TLS Feature extension (RFC 7633 §6).
var oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}

// statusRequest is the TLS extension number of status_request (RFC 6066).
const statusRequest = 5

// MustStaple reports whether leaf carries the TLS Feature extension with
// status_request ("OCSP must-staple", RFC 7633): clients that honour it
// refuse the certificate without a staple.
func MustStaple(leaf *x509.Certificate) bool {
	if leaf == nil {
		return false
	}
	for _, ext := range leaf.Extensions {
		if !ext.Id.Equal(oidTLSFeature) {
			continue
		}
		var features []int
		if rest, err := asn1.Unmarshal(ext.Value, &features); err != nil || len(rest) > 0 {
			return false
		}
		return slices.Contains(features, statusRequest)
	}
	return false
}

// Fingerprint returns the SHA-256 of leaf's DER in lower-case hex, the
// identity a staple is stored under (storage.StapleKey).
func Fingerprint(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// Verify parses der as the OCSP response for leaf, issued by issuer, and
// returns it if it may be stapled at now: a successful response, signed by
// issuer or by a responder certificate issuer signed for OCSP signing and
// valid at now, for leaf's serial number, with status good, thisUpdate no
// later than now (plus a few minutes of clock skew) and nextUpdate, if
// any, after now (without one, no more than an hour after thisUpdate).
// A verified revoked or unknown status is a *StatusError.
func Verify(der []byte, leaf, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	// Parsed without the issuer: x/crypto checks an embedded responder
	// certificate against the issuer's key, which fails when the responder
	// embeds the issuer itself (openssl ocsp -rsigner CA). The checks
	// below cover the three cases.
	r, err := ocsp.ParseResponseForCert(der, leaf, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing OCSP response: %w", err)
	}
	switch {
	case r.Certificate == nil:
		if err := r.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("OCSP response not signed by the issuer: %w", err)
		}
	case bytes.Equal(r.Certificate.Raw, issuer.Raw):
		// Signed by the embedded certificate (checked while parsing),
		// which is the issuer.
	default:
		if err := checkDelegate(r.Certificate, issuer, now); err != nil {
			return nil, err
		}
	}
	if r.SerialNumber == nil || r.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return nil, errors.New("OCSP response is for another serial number")
	}
	if r.ThisUpdate.IsZero() || r.ThisUpdate.After(now.Add(clockSkew)) {
		return nil, fmt.Errorf("OCSP response's thisUpdate %s is in the future", r.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if end := expiry(r); !now.Before(end) {
		return nil, fmt.Errorf("OCSP response expired at %s", end.UTC().Format(time.RFC3339))
	}
	if r.Status != ocsp.Good {
		se := &StatusError{Serial: leaf.SerialNumber.Text(16), Status: r.Status, RevokedAt: r.RevokedAt}
		if r.Status == ocsp.Revoked {
			se.Reason = reasonName(r.RevocationReason)
		}
		return r, se
	}
	return r, nil
}

// checkDelegate checks a delegated responder certificate (RFC 6960
// §4.2.2.2): signed by the issuer, for OCSP signing, valid now. Its
// signature on the response was checked while parsing.
func checkDelegate(resp, issuer *x509.Certificate, now time.Time) error {
	if err := resp.CheckSignatureFrom(issuer); err != nil {
		return fmt.Errorf("OCSP responder certificate not issued by the issuer: %w", err)
	}
	if !slices.Contains(resp.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		return errors.New("OCSP responder certificate is not for OCSP signing")
	}
	if now.Before(resp.NotBefore) || now.After(resp.NotAfter) {
		return errors.New("OCSP responder certificate is not valid now")
	}
	return nil
}

// expiry is when r stops being usable: its nextUpdate, or an hour after
// thisUpdate when it has none.
func expiry(r *ocsp.Response) time.Time {
	if r.NextUpdate.IsZero() {
		return r.ThisUpdate.Add(noNextUpdate)
	}
	return r.NextUpdate
}

// RefreshAt returns when r should be replaced: half way from thisUpdate
// to its expiry, and not before now plus a few seconds.
func RefreshAt(r *ocsp.Response, now time.Time) time.Time {
	at := halfway(r)
	if earliest := now.Add(minRefresh); at.Before(earliest) {
		at = earliest
	}
	return at
}

func halfway(r *ocsp.Response) time.Time {
	return r.ThisUpdate.Add(expiry(r).Sub(r.ThisUpdate) / 2)
}

// Stapler fetches staples from responders and keeps them in Storage. Its
// zero value fetches without storing. It is safe for concurrent use; its
// fields must not change after first use.
type Stapler struct {
	// Storage keeps staples under storage.StapleKey, so they survive
	// restarts and are shared by a cluster. Nil keeps none.
	Storage storage.Storage

	// HTTPClient asks the responders. Nil means http.DefaultClient; each
	// request is bounded by 15 seconds unless the context says less.
	HTTPClient *http.Client
}

// Staple returns a verified response for leaf, issued by issuer: the
// stored one if it is not yet due for refresh (RefreshAt), else a fresh
// one from leaf's responder, which it stores. When the responder fails but
// the stored response is still valid, it returns that one along with the
// error. A leaf without a responder gives ErrNoOCSP.
func (s *Stapler) Staple(ctx context.Context, leaf, issuer *x509.Certificate) (*ocsp.Response, error) {
	url := responderURL(leaf)
	if url == "" {
		return nil, ErrNoOCSP
	}
	now := time.Now()
	key, err := storage.StapleKey(Fingerprint(leaf))
	if err != nil {
		return nil, err
	}
	var stored *ocsp.Response
	if s.Storage != nil {
		if der, err := s.Storage.Load(ctx, key); err == nil {
			// A stored response is checked like a fetched one: it may have
			// expired, or been written by anything with storage access.
			if r, err := Verify(der, leaf, issuer, now); err == nil {
				if now.Before(halfway(r)) {
					return r, nil
				}
				stored = r
			}
		}
	}
	der, err := s.fetch(ctx, url, leaf, issuer)
	if err == nil {
		var r *ocsp.Response
		r, err = Verify(der, leaf, issuer, time.Now())
		if err == nil {
			if s.Storage != nil {
				if err := s.Storage.Store(ctx, key, der); err != nil {
					return r, fmt.Errorf("storing OCSP staple: %w", err)
				}
			}
			return r, nil
		}
		var se *StatusError
		if errors.As(err, &se) {
			return nil, err // a stored good response must not outlive a revocation
		}
	}
	return stored, fmt.Errorf("fetching OCSP response from %s: %w", url, err)
}

// Stored returns the staple kept in Storage for leaf if it still
// verifies, else nil. It makes no request to the responder: the Manager
// calls it when it loads a certificate, so a restarted server staples at
// once rather than after its first fetch.
func (s *Stapler) Stored(ctx context.Context, leaf, issuer *x509.Certificate) *ocsp.Response {
	if s.Storage == nil || !HasOCSP(leaf) {
		return nil
	}
	key, err := storage.StapleKey(Fingerprint(leaf))
	if err != nil {
		return nil
	}
	der, err := s.Storage.Load(ctx, key)
	if err != nil {
		return nil
	}
	r, err := Verify(der, leaf, issuer, time.Now())
	if err != nil {
		return nil
	}
	return r
}

// fetch POSTs an OCSP request for leaf to url (RFC 6960 §A.1) and returns
// the response body.
func (s *Stapler) fetch(ctx context.Context, url string, leaf, issuer *x509.Certificate) ([]byte, error) {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, fmt.Errorf("creating OCSP request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(req))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	hr.Header.Set("Accept", "application/ocsp-response")
	client := s.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("responder answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading OCSP response: %w", err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("OCSP response over %d bytes", maxResponse)
	}
	return body, nil
}

// logValue names a certificate in logs without its key.
func logValue(leaf *x509.Certificate) slog.Value {
	names := leaf.DNSNames
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	return slog.GroupValue(slog.Any("names", names), slog.String("serial", leaf.SerialNumber.Text(16)))
}
