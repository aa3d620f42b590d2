// Package certserver is the HTTP API of the central certificate server
// ("certkeeper server"): web servers of a fleet (nginx through the Lua
// plugin, Go servers through package certclient) fetch their certificates
// and keys from it at handshake time, and one place obtains, stores and
// renews them.
//
// It hands out private keys, so every /v1/ request must authenticate: a
// bearer token (compared in constant time) or a client certificate the
// TLS layer verified. Every hand-out of a key is written to the audit log.
// Paths are bounded before anything else looks at them, and a request
// body is never read: the API takes none, and a client that announces one
// is answered at once (401 before authentication, 413 after) and
// disconnected, so it cannot hold a connection by sending it slowly.
//
// What it does not do: it obtains nothing itself (the certkeeper.Manager
// does), and it opens no listener; the caller serves Handler.
package certserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/every"
	"github.com/certkeeper/certkeeper/internal/loopback"
	"github.com/certkeeper/certkeeper/internal/nobody"
)

// Defaults of Handler's zero fields.
const (
	DefaultIssueTimeout = 30 * time.Second
	DefaultMaxTTL       = time.Hour
	DefaultMaxPath      = 1024

	// Deprecated: the API refuses every request body, unread.
	DefaultMaxBody = 64 << 10
)

// Handler serves the API:
//
//	GET /v1/certificates/{name}[?format=pem]  certificate, key and staple
//	GET /v1/ocsp/{name}                       the OCSP staple (DER)
//	GET /healthz                              200 "ok"; 503 while storage fails (Manager.Health)
//	GET /.well-known/acme-challenge/...       http-01, for the Manager's issuers
//
// docs/api.md documents the answers. Set the fields before first use; they
// must not change afterwards.
type Handler struct {
	// Manager obtains and serves the certificates. Required.
	Manager *certkeeper.Manager

	// Tokens are the accepted bearer tokens, one entry per line of a token
	// file as LoadTokens returns them: a token, optionally followed by its
	// scope ("names=*.a.example,b.example": only those names, 403 for
	// others). Empty entries keep the positions by which audit lines name
	// tokens ("token 2"). An entry that does not parse never matches.
	// SetTokens replaces them while serving. A request authenticates with
	// a token or with a client certificate (every name); with both, the
	// token must match, and its scope applies.
	Tokens []string

	// Anonymous serves /v1/ to unauthenticated clients too (audit lines
	// say "anonymous"). Only for a listener no one else can reach: the
	// server command allows it on loopback addresses only, and such a
	// request must come in on a loopback address and name a loopback host
	// (127.0.0.1, [::1], localhost) in Host, or get 421: a web page that
	// makes the operator's browser ask the server through a name of its
	// own (DNS rebinding) reads no key.
	Anonymous bool

	// IssueTimeout bounds how long a request for a name with no
	// certificate yet waits for its issuance before a 503 (the issuance
	// goes on). Zero means 30 seconds.
	IssueTimeout time.Duration

	// MaxTTL caps the ttl_seconds answered (how long a client may keep a
	// certificate before asking again). Zero means an hour.
	MaxTTL time.Duration

	// LimitClients counts each request for a name with no certificate
	// against the Manager's ClientLimit by the address it came from (a
	// web server of the fleet): at most so many new names per web server,
	// the rest answered 503 with when its budget refills. Off (the zero
	// value), a web server asks for every name its own clients do, and is
	// not limited.
	LimitClients bool

	// MaxPath bounds a request's path with query, in bytes (414 beyond).
	// Zero means 1024.
	MaxPath int

	// Deprecated: MaxBody is ignored: the API refuses every request
	// body (413), without reading it.
	MaxBody int64

	// Audit receives one line per hand-out of key material: who (token
	// number or client certificate subject, and address), which name,
	// when. Nil means Logger.
	Audit *slog.Logger

	// AuditErr, when set, is asked before each hand-out of a key: while
	// it returns an error (the audit log is not being written, e.g.
	// AuditWriter.Err), keys are refused with 503 and Retry-After, so that
	// none leaves unrecorded. Nil: never asked (the audit log fails open).
	AuditErr func() error

	// Logger receives the handler's debug log. Nil means slog.Default().
	Logger *slog.Logger

	// Metrics, when set, is served at GET /metrics to clients that
	// authenticate as for the API (e.g. metrics.Handler(Manager); a
	// Prometheus scrape config sends the token with "authorization").
	// Nil answers /metrics with 404.
	Metrics http.Handler

	once     sync.Once
	tokens   atomic.Pointer[tokenSet] // Tokens, or the set SetTokens swapped in
	acme     http.Handler
	renders  sync.Map // name → *rendered
	nRenders atomic.Int64
	counts   *requestCounts // answered requests (Requests)

	refusedTokens atomic.Uint64 // requests with a token not held
	refusedLogged every.Gate    // the warning about one
}

// refusedLogEvery is how often a refused token is logged at warn at most.
const refusedLogEvery = time.Minute

// warnRefusedToken logs a request whose bearer token the server does not
// hold (a client with a revoked or mistyped token, or someone guessing):
// at warn the first time in a minute, with the count so far, at debug
// otherwise, so that a client retrying, or a flood, is not a flood of log
// lines. The token is not logged.
func (h *Handler) warnRefusedToken(r *http.Request) {
	n := h.refusedTokens.Add(1)
	attrs := []slog.Attr{slog.String("remote_addr", r.RemoteAddr), slog.String("path", r.URL.Path), slog.Uint64("refused", n)}
	if h.refusedLogged.Allow(refusedLogEvery) {
		h.logger().LogAttrs(r.Context(), slog.LevelWarn, "API request with a bearer token the server does not hold", attrs...)
		return
	}
	h.logger().LogAttrs(r.Context(), slog.LevelDebug, "API request with a bearer token the server does not hold", attrs...)
}

func (h *Handler) init() {
	h.once.Do(func() {
		set, err := newTokenSet(h.Tokens)
		if err != nil {
			h.logger().Error("certserver: tokens that do not parse are refused", slog.Any("err", err))
		}
		h.tokens.CompareAndSwap(nil, set) // unless SetTokens came first
		h.acme = h.Manager.HTTPHandler(http.NotFoundHandler())
		h.counts = new(requestCounts)
	})
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func (h *Handler) audit() *slog.Logger {
	if h.Audit != nil {
		return h.Audit
	}
	return h.logger()
}

func (h *Handler) issueTimeout() time.Duration {
	if h.IssueTimeout > 0 {
		return h.IssueTimeout
	}
	return DefaultIssueTimeout
}

func (h *Handler) maxTTL() time.Duration {
	if h.MaxTTL > 0 {
		return h.MaxTTL
	}
	return DefaultMaxTTL
}

func (h *Handler) maxPath() int {
	if h.MaxPath > 0 {
		return h.MaxPath
	}
	return DefaultMaxPath
}

// ServeHTTP answers one API request, and counts it (Requests).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	kind, code := h.serve(w, r, false)
	h.count(kind, code)
}

// ChallengesOnly returns the handler of a plain-HTTP listener beside an
// HTTPS API (port 80, for http-01): it answers http-01 and /healthz as
// ServeHTTP does, and every other request with 403, unauthenticated and
// unread, so that a client that sends its token there by mistake gets no
// key in clear, and is told where the API is. Its requests are counted
// with the API's (Requests).
func (h *Handler) ChallengesOnly() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.init()
		kind, code := h.serve(w, r, true)
		h.count(kind, code)
	})
}

// httpsOnlyMsg is ChallengesOnly's answer to an API request.
const httpsOnlyMsg = "this address answers http-01 and /healthz only: the API is served over HTTPS"

// serve answers one API request and returns its kind and status code;
// challengesOnly refuses every request but http-01 and /healthz, unread
// (ChallengesOnly).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, challengesOnly bool) (kind, code int) {
	req := parseRequest(r.Method, r.URL.Path, r.URL.RawQuery, len(r.RequestURI), h.maxPath())
	body := nobody.Has(r)
	if body {
		nobody.Drop(w) // never read, whoever asks
	}
	if req.status != 0 {
		return req.kind, fail(w, req.status, req.msg)
	}
	if body && (req.kind == kindHealth || req.kind == kindChallenge) {
		return req.kind, fail(w, http.StatusRequestEntityTooLarge, noBodyMsg)
	}
	switch req.kind {
	case kindHealth: // 200 "ok", or 503 while the storage does not answer
		return req.kind, serveCounted(h.Manager.Health(), w, r)
	case kindChallenge:
		return req.kind, serveCounted(h.acme, w, r)
	}
	if challengesOnly {
		return req.kind, fail(w, http.StatusForbidden, httpsOnlyMsg)
	}
	who, sc, ok := h.authenticate(r)
	if !ok && h.Anonymous {
		if !loopback.Request(r) { // DNS rebinding: a web page's name for 127.0.0.1 (package loopback)
			loopback.Refuse(w, "ask http://127.0.0.1:PORT (or localhost), or give the server --token-file")
			return req.kind, http.StatusMisdirectedRequest
		}
		who, ok = "anonymous", true
	}
	if !ok {
		if r.Header.Get("Authorization") != "" {
			h.warnRefusedToken(r)
		}
		return req.kind, unauthorized(w, r)
	}
	if body {
		return req.kind, fail(w, http.StatusRequestEntityTooLarge, noBodyMsg)
	}
	if req.kind == kindMetrics {
		if sc != nil {
			return req.kind, fail(w, http.StatusForbidden, "a token scoped to names may not read /metrics, which names every host")
		}
		if h.Metrics == nil {
			return req.kind, fail(w, http.StatusNotFound, "no metrics here: Handler.Metrics is not set")
		}
		return req.kind, serveCounted(h.Metrics, w, r)
	}
	if !sc.allows(req.name) {
		if req.kind == kindCertificate {
			h.audit().LogAttrs(r.Context(), slog.LevelInfo, "key refused: outside the token's scope", slog.String("name", req.name),
				slog.String("who", who), slog.String("scope", sc.text), slog.String("remote_addr", r.RemoteAddr))
		}
		return req.kind, fail(w, http.StatusForbidden, who+" may not fetch "+req.name+": outside its names= in the token file")
	}
	served, err := h.lookup(r, req.name)
	if err != nil {
		return req.kind, h.failLookup(w, req.name, err)
	}
	if other := sc.outside(served.Names); other != "" && req.kind == kindCertificate {
		h.audit().LogAttrs(r.Context(), slog.LevelInfo, "key refused: the certificate covers names outside the token's scope", slog.String("name", req.name),
			slog.String("outside", other), slog.String("who", who), slog.String("scope", sc.text), slog.String("remote_addr", r.RemoteAddr))
		return req.kind, fail(w, http.StatusForbidden, who+" may not fetch "+req.name+": its certificate also covers "+other+
			", outside its names= in the token file, and the key serves every name on it")
	}
	rd := h.render(req.name, served)
	if req.kind == kindOCSP {
		return req.kind, h.serveOCSP(w, r, rd)
	}
	if h.AuditErr != nil {
		if err := h.AuditErr(); err != nil {
			w.Header().Set("Retry-After", "10")
			return req.kind, fail(w, http.StatusServiceUnavailable, "the audit log cannot be written, and no key is handed out unrecorded: see the server's log")
		}
	}
	switch {
	case r.Method == http.MethodHead: // the answer's headers only: no key leaves
	case sc == nil:
		h.audit().LogAttrs(r.Context(), slog.LevelInfo, "key handed out", slog.String("name", req.name), slog.String("who", who),
			slog.String("remote_addr", r.RemoteAddr), slog.Bool("self_signed", served.SelfSigned))
	default:
		h.audit().LogAttrs(r.Context(), slog.LevelInfo, "key handed out", slog.String("name", req.name), slog.String("who", who),
			slog.String("scope", sc.text), slog.String("remote_addr", r.RemoteAddr), slog.Bool("self_signed", served.SelfSigned))
	}
	hdr := w.Header()
	hdr["Cache-Control"] = noStore
	if req.pem {
		hdr["Content-Type"] = pemType
		_, _ = w.Write(rd.pem)
		return req.kind, http.StatusOK
	}
	hdr["Content-Type"] = jsonType
	_, _ = w.Write(rd.json)
	return req.kind, http.StatusOK
}

// Shared header values: never modified.
var (
	noStore  = []string{"no-store"}
	pemType  = []string{"application/x-pem-file"}
	jsonType = []string{"application/json"}
)

const noBodyMsg = "the API takes no request body"

// lookup is the certificate for name: from memory, else through
// Manager.CertificateFor, waiting at most IssueTimeout, with r's client
// address counted against ClientLimit if LimitClients.
func (h *Handler) lookup(r *http.Request, name string) (certkeeper.Served, error) {
	if served, ok := h.Manager.Cached(name); ok {
		return served, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.issueTimeout())
	defer cancel()
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && h.LimitClients {
		client = ap.Addr()
	}
	return h.Manager.CertificateFor(ctx, name, client)
}

// failLookup answers an error of Manager.CertificateFor, and returns the
// status code.
func (h *Handler) failLookup(w http.ResponseWriter, name string, err error) int {
	var pe *certkeeper.PolicyError
	var ue *certkeeper.UnavailableError
	switch {
	case errors.Is(err, hostname.ErrInvalidName):
		return fail(w, http.StatusBadRequest, err.Error())
	case errors.As(err, &pe):
		return fail(w, http.StatusForbidden, "name denied by policy: "+name)
	case errors.As(err, &ue):
		secs := int(time.Until(ue.RetryAfter).Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		h.logger().Debug("no certificate to hand out yet", slog.String("name", name), slog.Any("err", err))
		return fail(w, http.StatusServiceUnavailable, "no certificate for "+name+" yet: "+ue.Reason()+"; retry later")
	case errors.Is(err, context.Canceled): // the client went away before anything was asked
		h.logger().Debug("looking up a certificate", slog.String("name", name), slog.Any("err", err))
		return fail(w, http.StatusServiceUnavailable, "no certificate for "+name+" now; retry later")
	default:
		h.logger().Warn("looking up a certificate", slog.String("name", name), slog.Any("err", err))
		w.Header().Set("Retry-After", "10")
		return fail(w, http.StatusServiceUnavailable, "no certificate for "+name+" now; retry later")
	}
}

// fail writes a plain-text error and returns its status.
func fail(w http.ResponseWriter, status int, msg string) int {
	if msg == "" {
		msg = http.StatusText(status)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
	return status
}

// unauthorized answers a request that authenticated as nobody: 401, with
// RFC 6750's error="invalid_token" when it sent a token the server does
// not hold (mistyped, or revoked), which is not echoed. It returns the status.
func unauthorized(w http.ResponseWriter, r *http.Request) int {
	if r.Header.Get("Authorization") != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="certkeeper", error="invalid_token"`)
		return fail(w, http.StatusUnauthorized, "the bearer token was not accepted: it is not in the server's token file (mistyped, or revoked)")
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="certkeeper"`)
	return fail(w, http.StatusUnauthorized, "a bearer token or a client certificate is required")
}
