// Package acmeca issues certificates from an ACME CA (RFC 8555): Let's
// Encrypt by default, or any CA with a directory URL.
//
// The wire protocol (JWS, nonces, the JSON objects) comes from
// github.com/mholt/acmez/v3's acme package; this package orchestrates the
// order flow itself, because that is where time is won or lost: it asks the
// CA to validate as soon as every challenge is presented, polls the moment
// its solver has answered the CA's validation request (and then on a short
// capped backoff), retries a failed step rather than the whole order, and
// waits out a rateLimited answer until its Retry-After. acmez's own
// PollAuthorization sleeps 250 ms before its first look; on Pebble the CA's
// whole work takes about 10 ms.
//
// It also handles accounts: one per (CA, email), registered on first use,
// stored with its key apart from its record so a lost record is found again
// from the key, and registered anew when the CA has forgotten it.
//
// It does not decide which names may be issued (package policy), store
// certificates (the caller does) or schedule renewals (the root package).
package acmeca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/internal/timeline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// Well-known directory URLs.
const (
	LetsEncrypt        = "https://acme-v02.api.letsencrypt.org/directory"
	LetsEncryptStaging = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Challenge type names, as on the wire.
const (
	HTTP01    = "http-01"
	TLSALPN01 = "tls-alpn-01"
	DNS01     = "dns-01"
	// DNSPersist01 is draft-ietf-acme-dns-persist: one TXT record set once
	// authorizes the account, with no change per order.
	DNSPersist01 = "dns-persist-01"
)

// ChallengeTypes are the challenge types an Issuer can answer (with a
// solver for each), the values ChallengeOrder and Solvers' keys take.
var ChallengeTypes = []string{HTTP01, TLSALPN01, DNS01, DNSPersist01}

// ErrUnknownChallenge is Check's error (wrapped) for a ChallengeOrder
// entry or a Solvers key that is no challenge type.
var ErrUnknownChallenge = errors.New("unknown challenge type")

// Check reports mistakes in iss's configuration that would fail every
// order, without asking the CA: a ChallengeOrder entry or a Solvers key
// that is no challenge type ("http" for "http-01"). Issue checks it before
// ordering; certkeeper.Manager.Start checks it for each issuer.
func (iss *Issuer) Check() error {
	var errs []error
	check := func(where, typ string) {
		if slices.Contains(ChallengeTypes, typ) {
			return
		}
		msg := fmt.Sprintf("%s %q: %v: use %s", where, typ, ErrUnknownChallenge, strings.Join(ChallengeTypes, ", "))
		s := cmdline.Suggest(strings.ToLower(typ), ChallengeTypes)
		if i := slices.IndexFunc(ChallengeTypes, func(c string) bool { return strings.HasPrefix(c, strings.ToLower(typ)+"-") }); s == "" && i >= 0 {
			s = ChallengeTypes[i] // "http" for http-01
		}
		if s != "" {
			msg += fmt.Sprintf("; did you mean %s?", s)
		}
		errs = append(errs, fmt.Errorf("acmeca: %w", &checkError{msg: msg}))
	}
	for _, typ := range iss.ChallengeOrder {
		check("ChallengeOrder", typ)
	}
	for _, typ := range slices.Sorted(maps.Keys(iss.Solvers)) {
		check("Solvers key", typ)
	}
	return errors.Join(errs...)
}

// checkError is a Check mistake: it is ErrUnknownChallenge.
type checkError struct{ msg string }

func (e *checkError) Error() string        { return e.msg }
func (e *checkError) Is(target error) bool { return target == ErrUnknownChallenge }

// Issuer issues certificates from one ACME CA with one account. Set the
// fields before first use and do not change them afterwards. Storage and at
// least one solver are required; every other zero value works. In a
// certkeeper.Manager's Issuers (or a NameRule's) a nil Storage, nil
// Solvers and nil Logger are the Manager's: its Storage, the tls-alpn-01
// and http-01 answers of its TLSConfig and HTTPHandler (Manager.Solvers),
// and its Logger.
type Issuer struct {
	// DirectoryURL is the CA's ACME directory. Empty means Let's Encrypt
	// production (LetsEncrypt).
	DirectoryURL string

	// Email is the account's contact address; empty registers an account
	// without contact. Let's Encrypt no longer sends expiry mail, so it is
	// optional. Empty orders with the account Storage holds without a
	// contact, or, if it holds none but exactly one other at this CA (one
	// registered by hand with its email), with that one.
	Email string

	// Storage keeps the account (and nothing else: certificates are the
	// caller's to store). Required.
	Storage storage.Storage

	// Solvers answer challenges, keyed by challenge type ("http-01",
	// "tls-alpn-01", "dns-01"). When the CA offers several that have a
	// solver, the first in ChallengeOrder wins.
	Solvers map[string]solver.Solver

	// ChallengeOrder is the preference among Solvers. Empty means
	// dns-persist-01 (used only where its record is in place), then
	// tls-alpn-01, http-01, dns-01 (the order in which validation is
	// fastest and needs the least set-up). In an order with a wildcard,
	// which only DNS validates, the DNS-based challenges come first for
	// every name (the apex too), so that the order depends on DNS alone.
	ChallengeOrder []string

	// Profile is the ACME profile to order (draft-ietf-acme-profiles), such
	// as "tlsserver" or "shortlived" at Let's Encrypt. Empty lets the CA
	// choose. A profile the CA does not list fails before any order.
	Profile string

	// EAB binds the account to an account at the CA, for CAs that require
	// external account binding (RFC 8555 §7.3.4).
	EAB *acme.EAB

	// PreferredChain selects among the chains the CA offers (RFC 8555
	// §7.4.2 alternates): the first chain whose topmost certificate is
	// issued by (or is) a certificate with this subject common name.
	// Empty takes the CA's default chain.
	PreferredChain string

	// AgreeTerms is called with the CA's terms-of-service URL before an
	// account is registered; returning false aborts. Nil agrees.
	AgreeTerms func(tosURL string) bool

	// NoWait makes a rateLimited answer fail at once with the time the CA
	// allows a retry (issuer.Error.RetryAfter) instead of waiting for it.
	NoWait bool

	// HTTPClient is used for every request to the CA. Nil means a client
	// with the system's roots and 30 s timeouts. Its transport is wrapped,
	// never modified.
	HTTPClient *http.Client

	// UserAgent is appended to the User-Agent header.
	UserAgent string

	// Logger receives the issuer's logs. Nil means the Manager's Logger
	// in a Manager's Issuers, else slog.Default().
	Logger *slog.Logger

	clientOnce sync.Once
	acmeClient *acme.Client

	acctMu sync.Mutex    // guards acct; held while registering
	acct   *acme.Account // the account in use, once known
	// acctChecked is when acct was last compared with storage (recheck);
	// recheckEvery, set by tests, replaces accountRecheck.
	acctChecked  time.Time
	recheckEvery time.Duration
	// ariBudget, set by tests, replaces renewalInfoBudget.
	ariBudget time.Duration

	// sole is the record and key of the account an Issuer without Email
	// orders with when storage holds only that one at the CA (adoptSole).
	sole atomic.Pointer[[2]string]
}

// ID is storage.IssuerID of the directory URL.
func (iss *Issuer) ID() string { return storage.IssuerID(iss.directory()) }

func (iss *Issuer) directory() string {
	if iss.DirectoryURL == "" {
		return LetsEncrypt
	}
	return iss.DirectoryURL
}

// where is the directory URL as messages show it (redact.URL).
func (iss *Issuer) where() string { return redact.URL(iss.directory()) }

// checkDirectory refuses a directory URL that does not parse or holds user
// information, before any request: the HTTP client's errors would quote
// it, password included, and no ACME CA takes credentials there (external
// account binding is how a CA account is named).
func (iss *Issuer) checkDirectory() error {
	dir := iss.directory()
	u, err := url.Parse(dir)
	switch {
	case err != nil:
		return fmt.Errorf("acmeca: directory URL %s: %w", iss.where(), redact.Error(dir, err))
	case u.User != nil:
		return fmt.Errorf("acmeca: directory URL %s: user information is not supported in a directory URL (for a CA account, use external account binding)", iss.where())
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return fmt.Errorf("acmeca: directory URL %s: not an absolute https URL", iss.where())
	}
	return nil
}

func (iss *Issuer) logger() *slog.Logger {
	if iss.Logger != nil {
		return iss.Logger
	}
	return slog.Default()
}

// client returns the acme.Client, built on first use, for what needs
// the account (and so Storage).
func (iss *Issuer) client(ctx context.Context) (*acme.Client, error) {
	if iss.Storage == nil {
		return nil, errors.New("acmeca: Issuer.Storage is nil: set a storage to keep the ACME account in")
	}
	return iss.directoryClient()
}

// directoryClient returns the acme.Client, built on first use, for what
// needs no account: the directory (Profiles, before anything is stored).
func (iss *Issuer) directoryClient() (*acme.Client, error) {
	if err := iss.checkDirectory(); err != nil {
		return nil, err
	}
	iss.clientOnce.Do(func() {
		base := iss.HTTPClient
		if base == nil {
			base = &http.Client{Timeout: 30 * time.Second}
		}
		hc := *base
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		hc.Transport = transport{base: rt, directory: iss.directory()}
		iss.acmeClient = &acme.Client{
			Directory:  iss.directory(),
			HTTPClient: &hc,
			UserAgent:  strings.TrimSpace("certkeeper " + iss.UserAgent),
			// Only FinalizeOrder polls with these; a Retry-After from the
			// CA still wins. A CA that issues at once (Pebble: about a
			// millisecond after it answers the finalize request) is seen
			// at the first poll; past PollTimeout — at most
			// finalizeQuickPolls requests — finalize polls on its own
			// capped backoff (pollOrder).
			PollInterval: finalizePollInterval,
			PollTimeout:  finalizeQuickPolls * finalizePollInterval,
			Logger:       slog.New(quietHandler{iss.logger().Handler()}).With(slog.String("issuer", iss.ID())),
		}
	})
	return iss.acmeClient, nil
}

// getDirectory fetches (or returns the cached) directory, retrying
// transient failures; an unreachable CA is named in the error.
func (iss *Issuer) getDirectory(ctx context.Context) (acme.Directory, error) {
	client, err := iss.directoryClient()
	if err != nil {
		return acme.Directory{}, err
	}
	var dir acme.Directory
	err = iss.do(ctx, "fetching directory", func(ctx context.Context) error {
		var err error
		dir, err = client.GetDirectory(ctx)
		return err
	})
	if err == nil {
		return dir, nil
	}
	if m := httpStatus.FindStringSubmatch(err.Error()); m != nil {
		// Reached: something answered, but not with a directory.
		hint := "not an ACME directory: check the directory URL, e.g. https://acme-v02.api.letsencrypt.org/directory"
		if strings.Contains(err.Error(), "HTTP request to an HTTPS server") {
			hint = "the server speaks HTTPS: the directory URL starts with https://"
		}
		return acme.Directory{}, fmt.Errorf("%w: %s answered HTTP %s, %s: %w", ErrNotDirectory, iss.where(), m[1], hint, oneLine{err})
	}
	if ue, ok := errors.AsType[*unreachableError](err); ok {
		err = ue.err // said here the directory's way, with what to check
	}
	if untrusted(err) {
		return acme.Directory{}, fmt.Errorf("%w at %s (%w: its root is not one the HTTP client trusts): %w", ErrUnreachable, iss.where(), ErrCANotTrusted, oneLine{err})
	}
	return acme.Directory{}, fmt.Errorf("%w at %s (check the URL and the network; the CA may be down): %w", ErrUnreachable, iss.where(), oneLine{err})
}

// ErrNotDirectory is wrapped by the error of an Issuer whose directory URL
// answers, but not with an ACME directory (a 404: a wrong path; a 400: an
// http:// URL to an HTTPS server).
var ErrNotDirectory = errors.New("no ACME directory there")

// httpStatus finds the status of an HTTP error answer in acmez's error
// for a directory request.
var httpStatus = regexp.MustCompile(`\bHTTP ([1-5][0-9][0-9])\b`)

// oneLine is an error whose text is err's on one line: an HTTP answer's
// body (a 404 page) ends in a newline that would split a log line or a
// message that goes on after it.
type oneLine struct{ err error }

func (e oneLine) Error() string { return strings.Join(strings.Fields(e.err.Error()), " ") }

func (e oneLine) Unwrap() error { return e.err }

// Profiles returns the profiles the CA lists, sorted by name.
func (iss *Issuer) Profiles(ctx context.Context) ([]string, error) {
	dir, err := iss.getDirectory(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	if dir.Meta != nil {
		for name := range dir.Meta.Profiles {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// IssuerDomainNames returns the CA's issuer domain names (the directory's
// caaIdentities, e.g. "letsencrypt.org"): what a dns-persist-01 record
// names the CA by.
func (iss *Issuer) IssuerDomainNames(ctx context.Context) ([]string, error) {
	dir, err := iss.getDirectory(ctx)
	if err != nil {
		return nil, err
	}
	if dir.Meta == nil || len(dir.Meta.CAAIdentities) == 0 {
		return nil, fmt.Errorf("the CA at %s lists no issuer domain names (caaIdentities) in its directory", iss.where())
	}
	return slices.Clone(dir.Meta.CAAIdentities), nil
}

// ErrUnknownProfile is returned (wrapped in *issuer.Error) when Profile is
// not one the CA lists.
var ErrUnknownProfile = errors.New("unknown profile")

// Issue obtains a certificate for req. It is the one issuance path for
// first issue and renewal: with req.Replaces set it sends ARI "replaces"
// when the CA supports ARI, and orders again without it if the CA refuses
// the replacement (ARI must never be why a certificate lapses).
func (iss *Issuer) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	cert, err := iss.issue(ctx, req)
	if err != nil {
		ierr := &issuer.Error{Issuer: iss.ID(), Names: req.Names, Err: err}
		var rl *rateLimitError
		switch {
		case errors.As(err, &rl):
			ierr.RetryAfter = rl.until
			ierr.Err = fmt.Errorf("%w: %w", issuer.ErrRateLimited, err)
		case rejectsName(err):
			ierr.Err = fmt.Errorf("%w (its policy forbids it: take it out of the names asked for; retrying does not help): %w",
				issuer.ErrNameRejected, err)
		}
		return nil, ierr
	}
	return cert, nil
}

func (iss *Issuer) issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names to issue")
	}
	if len(req.CSR) == 0 {
		return nil, errors.New("no CSR")
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil {
		return nil, fmt.Errorf("parsing CSR: %w", err)
	}
	if len(iss.Solvers) == 0 {
		return nil, errors.New("acmeca: no challenge solvers configured")
	}
	if err := iss.Check(); err != nil {
		return nil, err
	}
	if err := iss.checkWildcards(req.Names); err != nil {
		return nil, err
	}
	client, err := iss.client(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := iss.getDirectory(ctx)
	if err != nil {
		return nil, err
	}
	if err := iss.checkProfile(ctx); err != nil {
		return nil, err
	}
	acct, email, err := iss.orderingAccount(ctx, req)
	if err != nil {
		return nil, err
	}
	timeline.Mark(ctx, "directory_account")

	if r := req.Resume; r != nil && r.Issuer == iss.ID() && r.Account == acct.Location {
		if cert, err := iss.resume(ctx, client, acct, csr, req); cert != nil || ctx.Err() != nil {
			if cert != nil {
				cert.Email = email
			}
			return cert, err
		}
	}

	placed, ordering, err := iss.placeOrder(ctx, client, acct, dir, req)
	if err != nil {
		return nil, err
	}
	if ordering.Location != acct.Location { // the CA forgot acct: the issuer's own, registered again
		acct, email = ordering, iss.ownEmail()
	}
	progress(req, "order created: %s", placed.Location)
	timeline.Mark(ctx, "new_order")

	if err := iss.authorize(ctx, client, acct, placed, req); err != nil {
		return nil, err
	}

	if req.Finalizing != nil {
		req.Finalizing(issuer.Order{Issuer: iss.ID(), URL: placed.Location, Account: acct.Location})
	}
	final, err := iss.finalize(ctx, client, acct, placed, req)
	if err != nil {
		return nil, err
	}
	cert, err := iss.certificate(ctx, client, acct, final, csr, req)
	if cert != nil {
		cert.Email = email
	}
	return cert, err
}

// certificate downloads the certificate of the valid order final, picks
// its chain and checks the leaf against csr.
func (iss *Issuer) certificate(ctx context.Context, client *acme.Client, acct acme.Account, final acme.Order, csr *x509.CertificateRequest, req issuer.Request) (*issuer.Certificate, error) {
	progress(req, "finalized; downloading certificate")
	budget := renewalInfoBudget
	if iss.ariBudget != 0 {
		budget = iss.ariBudget
	}
	var chains []acme.Certificate
	err := iss.do(ctx, "downloading certificate", func(ctx context.Context) error {
		var err error
		chains, err = client.GetCertificateChain(withARIBudget(ctx, budget), acct, final.Certificate)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("downloading certificate %s: %w", final.Certificate, err)
	}
	timeline.Mark(ctx, "download_ari")
	chain, offered, err := pickChain(chains, iss.PreferredChain)
	if err != nil {
		return nil, err
	}
	if offered != nil {
		progress(req, "no chain the CA offers ends at %q (it offers chains ending at %s): kept its default chain", iss.PreferredChain, strings.Join(offered, ", "))
		iss.logger().Info("no chain the CA offers ends at the preferred chain's name; kept its default",
			slog.String("issuer", iss.ID()), slog.String("preferred_chain", iss.PreferredChain), slog.Any("offered", offered))
	}
	leaf, err := checkLeaf(chain.ChainPEM, csr, req.Names)
	if err != nil {
		return nil, fmt.Errorf("certificate from %s: %w", final.Certificate, err)
	}
	return &issuer.Certificate{
		ChainPEM:      chain.ChainPEM,
		Leaf:          leaf,
		Issuer:        iss.ID(),
		URL:           final.Certificate,
		Account:       acct.Location,
		Profile:       final.Profile,
		RenewalWindow: window(chain.RenewalInfo),
	}, nil
}

// window is the renewal window acme's download asked for the chain (ri),
// if the CA offered one.
func window(ri *acme.RenewalInfo) *issuer.Window {
	if ri == nil || !ri.HasWindow() {
		return nil
	}
	w := &issuer.Window{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End, ExplanationURL: ri.ExplanationURL}
	if ri.RetryAfter != nil {
		w.RetryAfter = *ri.RetryAfter
	}
	return w
}

// resume fetches req.Resume, an order a previous attempt finalized, and
// returns its certificate: at once if the CA signed it, after polling if
// it is still processing, after finalizing it with csr if it is ready
// (the previous attempt died before its finalize request arrived). For an
// order it cannot use it logs why and returns nil, nil: the caller orders
// anew, as it would have without resume. Only a done ctx is an error.
func (iss *Issuer) resume(ctx context.Context, client *acme.Client, acct acme.Account, csr *x509.CertificateRequest, req issuer.Request) (*issuer.Certificate, error) {
	cert, err := func() (*issuer.Certificate, error) {
		// The record comes from storage: only the CA's own URLs are
		// fetched, signed by the account.
		if u, d := parseURL(req.Resume.URL), parseURL(iss.directory()); u == nil || d == nil || u.Scheme != d.Scheme || u.Host != d.Host {
			return nil, errors.New("the order is not at this CA")
		}
		var order acme.Order
		err := iss.do(ctx, "fetching the unfinished order", func(ctx context.Context) error {
			var err error
			order, err = client.GetOrder(ctx, acct, acme.Order{Location: req.Resume.URL})
			return err
		})
		if err != nil {
			return nil, err
		}
		switch order.Status {
		case acme.StatusProcessing:
			if order, err = iss.pollOrder(ctx, client, acct, order); err != nil {
				return nil, err
			}
		case acme.StatusReady:
			if order, err = iss.finalize(ctx, client, acct, order, req); err != nil {
				return nil, err
			}
		case acme.StatusValid:
		default:
			return nil, fmt.Errorf("the order is %s", order.Status)
		}
		if order.Certificate == "" {
			return nil, fmt.Errorf("the order is %s with no certificate", order.Status)
		}
		cert, err := iss.certificate(ctx, client, acct, order, csr, req)
		if err != nil {
			return nil, err
		}
		if req.Replaces != nil && !cert.Leaf.NotBefore.After(req.Replaces.NotBefore) {
			return nil, errors.New("its certificate is no newer than the one being renewed")
		}
		return cert, nil
	}()
	attrs := []any{slog.String("issuer", iss.ID()), slog.Any("names", req.Names), slog.String("order", req.Resume.URL)}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		iss.logger().Info("not resuming an order an earlier attempt finalized; ordering anew", append(attrs, slog.Any("err", err))...)
		return nil, nil
	}
	progress(req, "resumed order %s", req.Resume.URL)
	iss.logger().Info("resumed an order an earlier attempt finalized (no new order)", attrs...)
	return cert, nil
}

// parseURL parses an absolute URL, or returns nil.
func parseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return nil
	}
	return u
}

// checkProfile refuses a Profile the CA does not offer, naming those it
// does.
func (iss *Issuer) checkProfile(ctx context.Context) error {
	if iss.Profile == "" {
		return nil
	}
	profiles, _ := iss.Profiles(ctx)
	if slices.Contains(profiles, iss.Profile) {
		return nil
	}
	offered := "none"
	if len(profiles) > 0 {
		offered = strings.Join(profiles, ", ")
	}
	return fmt.Errorf("%w %q: the CA at %s offers: %s", ErrUnknownProfile, iss.Profile, iss.where(), offered)
}

// placeOrder creates the order for req, as an ARI replacement of
// req.Replaces when the CA supports it, and plainly if the CA refuses
// the replacement.
func (iss *Issuer) placeOrder(ctx context.Context, client *acme.Client, acct acme.Account, dir acme.Directory, req issuer.Request) (acme.Order, acme.Account, error) {
	order := acme.Order{Identifiers: identifiers(req.Names), Profile: iss.Profile}
	if req.Replaces != nil && dir.RenewalInfo != "" {
		if id, err := acme.ARIUniqueIdentifier(req.Replaces); err == nil {
			order.Replaces = id
		}
	}
	progress(req, "creating order for %s", strings.Join(req.Names, ", "))
	placed, acct, err := iss.newOrder(ctx, client, acct, order)
	if err != nil && order.Replaces != "" && ctx.Err() == nil && !isProblem(err, acme.ProblemTypeRateLimited) && !isNetworkError(err) {
		// RFC 9773 §5: a CA may refuse a replacement (alreadyReplaced,
		// another account's certificate, one it does not know) — and
		// some answer that with a server error (Pebble: 500 "could not
		// find an order for the given certificate"), which retrying does
		// not cure. Renewing matters more than the rate-limit exemption:
		// order plainly. Only an unreachable CA is not worth a second try.
		// Info, not Warn: the renewal goes on, and nothing needs doing
		// (after a CA's restart, every certificate says it once).
		iss.logger().Info("the CA refused the ARI replacement order; ordering without replaces",
			slog.String("issuer", iss.ID()), slog.Any("names", req.Names), slog.Any("err", err))
		order.Replaces = ""
		placed, acct, err = iss.newOrder(ctx, client, acct, order)
	}
	if err != nil {
		return acme.Order{}, acct, fmt.Errorf("creating order: %w", err)
	}
	return placed, acct, nil
}

// finalize finalizes the authorized order with req.CSR and waits until
// the CA has signed the certificate.
func (iss *Issuer) finalize(ctx context.Context, client *acme.Client, acct acme.Account, placed acme.Order, req issuer.Request) (acme.Order, error) {
	var final acme.Order
	err := iss.do(ctx, "finalizing order", func(ctx context.Context) error {
		var err error
		final, err = client.FinalizeOrder(ctx, acct, placed, req.CSR)
		if err == nil {
			return nil
		}
		// The CA may have finalized the order although this failed: a
		// reply lost, which acmez's own retry of the request then met as
		// orderNotReady, or polling that gave up while it signs. Look at
		// the order rather than finalize it again, which the CA refuses.
		if o, gerr := client.GetOrder(ctx, acct, placed); gerr == nil {
			switch o.Status {
			case acme.StatusValid:
				final = o
				return nil
			case acme.StatusProcessing:
				final, err = iss.pollOrder(ctx, client, acct, o)
			}
		}
		return err
	})
	timeline.Mark(ctx, "finalize")
	if err != nil {
		return acme.Order{}, fmt.Errorf("finalizing order %s: %w", placed.Location, err)
	}
	if final.Status != acme.StatusValid || final.Certificate == "" {
		return acme.Order{}, fmt.Errorf("finalizing order %s: order is %q with no certificate", placed.Location, final.Status)
	}
	return final, nil
}

// newOrder places order, registering the account again if the CA has lost
// it (a CA that was reset, or a deactivated account). Only the problem
// type accountDoesNotExist says so: an unauthorized problem whose text
// mentions an account (Pebble's "requester account did not request the
// certificate being replaced", for a replaces another account made) is a
// refusal of this order, which placeOrder answers by ordering without
// replaces.
func (iss *Issuer) newOrder(ctx context.Context, client *acme.Client, acct acme.Account, order acme.Order) (acme.Order, acme.Account, error) {
	var placed acme.Order
	step := func(ctx context.Context) error {
		var err error
		placed, err = client.NewOrder(ctx, acct, order)
		return err
	}
	err := iss.do(ctx, "creating order", step)
	if isProblem(err, acme.ProblemTypeAccountDoesNotExist) {
		if acct, err = iss.reregister(ctx, acct); err != nil {
			return acme.Order{}, acct, err
		}
		// A new account cannot replace the old account's certificate.
		order.Replaces = ""
		err = iss.do(ctx, "creating order", step)
	}
	return placed, acct, err
}

// Polling of a finalized order: acme.Client's FinalizeOrder polls every
// finalizePollInterval for finalizeQuickPolls polls; pollOrder then goes on
// from orderPollFirst, doubling to orderPollCap.
const (
	finalizePollInterval = time.Millisecond
	finalizeQuickPolls   = 10
	orderPollFirst       = 10 * time.Millisecond
	orderPollCap         = 5 * time.Second
)

// pollOrder polls a processing order on a capped backoff until it is valid
// or invalid, honouring the CA's Retry-After via do.
func (iss *Issuer) pollOrder(ctx context.Context, client *acme.Client, acct acme.Account, order acme.Order) (acme.Order, error) {
	delay := orderPollFirst
	start := time.Now()
	// stuck says what ended the polling when ctx did: the CA, not the
	// network (a trial's stuck order ended in a bare "context deadline
	// exceeded").
	stuck := func(o acme.Order, err error) error {
		if ctx.Err() == nil {
			return err
		}
		return fmt.Errorf("the CA had not signed the certificate after %s: the order is still %s (a CA signs within seconds): %w",
			time.Since(start).Round(time.Second), o.Status, err)
	}
	for {
		o, err := client.GetOrder(ctx, acct, order)
		if err != nil {
			if o.Status == "" {
				o.Status = order.Status
			}
			return o, stuck(o, err)
		}
		switch o.Status {
		case acme.StatusValid:
			return o, nil
		case acme.StatusInvalid:
			if o.Error != nil {
				return o, *o.Error
			}
			return o, errors.New("order became invalid")
		}
		if err := sleep(ctx, delay); err != nil {
			return o, stuck(o, err)
		}
		delay = min(delay*2, orderPollCap)
	}
}

// identifiers turns names into ACME identifiers: "ip" for IP literals
// (RFC 8738), "dns" otherwise.
func identifiers(names []string) []acme.Identifier {
	ids := make([]acme.Identifier, len(names))
	for i, n := range names {
		if net.ParseIP(n) != nil {
			ids[i] = acme.Identifier{Type: "ip", Value: n}
		} else {
			ids[i] = acme.Identifier{Type: "dns", Value: n}
		}
	}
	return ids
}

func progress(req issuer.Request, format string, args ...any) {
	if req.Progress != nil {
		req.Progress(fmt.Sprintf(format, args...))
	}
}

// checkLeaf parses the chain's leaf and checks it is for the CSR's key,
// covers every requested name and is valid now (within clockSkew), and
// that the chain is of a size a chain has: a CA bug must not become an
// outage. A trial's CA sent an expired leaf, stored, served and renewed
// in a loop as a success, and a 10 MB chain of 20,000 certificates.
func checkLeaf(chainPEM []byte, csr *x509.CertificateRequest, names []string) (*x509.Certificate, error) {
	if len(chainPEM) > maxChainBytes || bytes.Count(chainPEM, []byte("-----BEGIN ")) > maxChainCerts {
		return nil, fmt.Errorf("the chain is %d bytes with %d PEM blocks, more than a chain has (at most %d bytes, %d certificates)",
			len(chainPEM), bytes.Count(chainPEM, []byte("-----BEGIN ")), maxChainBytes, maxChainCerts)
	}
	block, _ := pem.Decode(chainPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate in the chain")
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing leaf: %w", err)
	}
	type publicKey interface{ Equal(x crypto.PublicKey) bool }
	pub, ok := leaf.PublicKey.(publicKey)
	if !ok || !pub.Equal(csr.PublicKey) {
		return nil, errors.New("leaf public key does not match the CSR")
	}
	for _, n := range names {
		if err := leaf.VerifyHostname(n); err != nil {
			return nil, fmt.Errorf("leaf does not cover %s: %w", n, err)
		}
	}
	switch now := time.Now(); {
	case !now.Before(leaf.NotAfter):
		return nil, fmt.Errorf("the leaf expired at %s, before it was delivered", leaf.NotAfter.UTC().Format(time.RFC3339))
	case leaf.NotBefore.After(now.Add(clockSkew)):
		return nil, fmt.Errorf("the leaf is valid only from %s, later than now (%s) beyond any clock skew", leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return leaf, nil
}

// Bounds checkLeaf puts on what a CA delivers: a chain of a leaf, an
// intermediate or two and perhaps a cross-signed root is a few KB; a
// leaf's validity may start in the future by clockSkew at most (the CA's
// clock or this host's a little off).
const (
	maxChainBytes = 64 << 10
	maxChainCerts = 10
	clockSkew     = time.Hour
)

// pickChain returns the chain preferred by cn (see Issuer.PreferredChain),
// or the CA's default chain with the names of the tops of the chains
// offered when none matches cn.
func pickChain(chains []acme.Certificate, cn string) (acme.Certificate, []string, error) {
	if len(chains) == 0 {
		return acme.Certificate{}, nil, errors.New("the CA returned no certificate chain")
	}
	if cn == "" {
		return chains[0], nil, nil
	}
	var offered []string
	for _, c := range chains {
		certs := parseChain(c.ChainPEM)
		if len(certs) == 0 {
			continue
		}
		top := certs[len(certs)-1]
		if top.Issuer.CommonName == cn || top.Subject.CommonName == cn {
			return c, nil, nil
		}
		offered = append(offered, strconv.Quote(top.Issuer.CommonName))
	}
	return chains[0], offered, nil
}

func parseChain(chainPEM []byte) []*x509.Certificate {
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return certs
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
}

// RenewalInfo returns the CA's ARI window for leaf (RFC 9773), or
// acme.ErrUnsupported when the CA does not offer ARI.
func (iss *Issuer) RenewalInfo(ctx context.Context, leaf *x509.Certificate) (acme.RenewalInfo, error) {
	client, err := iss.client(ctx)
	if err != nil {
		return acme.RenewalInfo{}, err
	}
	return client.GetRenewalInfo(ctx, leaf)
}

// quietHandler passes acmez's log records on only at Error, or all of them
// when the logger is at Debug: acmez logs every retried request at Warn and
// every ARI answer at Info, while certkeeper reports the failures that
// matter itself, once, with what happens next.
type quietHandler struct{ slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return q.Handler.Enabled(ctx, slog.LevelDebug) || l >= slog.LevelError && q.Handler.Enabled(ctx, l)
}

func (q quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{q.Handler.WithAttrs(attrs)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.Handler.WithGroup(name)}
}

// Revoke revokes cert (RFC 8555 §7.6) with an RFC 5280 reason code. The
// request is signed by certKey when it is given — no account needed, as
// when a key has leaked — and by this issuer's account otherwise, which
// must be the one that ordered the certificate (or one authorized for all
// its names). When the CA answers that it is not, each other account
// Storage holds at this CA is tried: the one that ordered it (another
// email's, or one certkeeper import brought in) revokes it.
func (iss *Issuer) Revoke(ctx context.Context, cert *x509.Certificate, certKey crypto.Signer, reason int) error {
	client, err := iss.client(ctx)
	if err != nil {
		return err
	}
	var acct acme.Account
	if certKey == nil {
		if acct, err = iss.Account(ctx); err != nil {
			return err
		}
	}
	revoke := func(acct acme.Account) error {
		return iss.do(ctx, "revoking certificate", func(ctx context.Context) error {
			return client.RevokeCertificate(ctx, acct, cert, certKey, reason)
		})
	}
	err = revoke(acct)
	if err != nil && certKey == nil && isProblem(err, acme.ProblemTypeUnauthorized) {
		err = iss.revokeWithOthers(ctx, acct, revoke, err)
	}
	if err != nil {
		return fmt.Errorf("revoking certificate %s at %s: %w", cert.SerialNumber.Text(16), iss.where(), err)
	}
	return nil
}

// revokeWithOthers tries revoke with each account Storage holds at this CA
// other than own, after own was refused with refused; the first that the
// CA accepts ends it.
func (iss *Issuer) revokeWithOthers(ctx context.Context, own acme.Account, revoke func(acme.Account) error, refused error) error {
	recordKey, _, err := iss.accountKeys()
	if err != nil {
		return refused
	}
	keys, _ := iss.Storage.List(ctx, path.Dir(recordKey)+"/")
	tried := 0
	for _, k := range keys {
		if !strings.HasSuffix(k, ".json") {
			continue
		}
		acct, err := iss.readAccount(ctx, k, strings.TrimSuffix(k, ".json")+".key", "")
		if err != nil || acct.Location == own.Location {
			continue
		}
		tried++
		if err := revoke(acct); err == nil {
			iss.logger().Info("revoked with the account that ordered the certificate",
				slog.String("issuer", iss.ID()), slog.String("account", acct.Location), slog.String("record", k))
			return nil
		} else if !isProblem(err, acme.ProblemTypeUnauthorized) {
			return err
		}
	}
	if tried == 0 {
		return fmt.Errorf("%w (storage holds no other account at this CA: revoke with the certificate's private key instead)", refused)
	}
	return fmt.Errorf("%w (nor did any of the %d other accounts storage holds at this CA order it: "+
		"revoke with the certificate's private key instead)", refused, tried)
}
