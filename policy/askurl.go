package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/internal/redact"
	"golang.org/x/sync/singleflight"
)

// AskURL defaults; each is documented on its field.
const (
	defaultAskTimeout   = 5 * time.Second
	defaultAskAllowTTL  = time.Minute
	defaultAskDenyTTL   = 10 * time.Second
	defaultAskCacheSize = 10_000
	defaultAskInFlight  = 64

	// maxAskBody is how much of an answer's body is read and thrown
	// away, so that the connection can be reused for the next question
	// without letting an endpoint make us read without end.
	maxAskBody = 4 << 10
)

// AskURL is a Policy that asks an HTTP endpoint whether a name may have a
// certificate, as Caddy's on-demand "ask" does: it sends
//
//	GET URL?domain=NAME
//
// and allows the name if the answer is 200 OK. Any other status, a
// redirect loop, an unreachable endpoint or one slower than Timeout
// refuses the name: an ask endpoint that is down must not turn on-demand
// issuance into "anything goes". Refusals wrap ErrDenied and say why:
// "name denied by policy: x.test: ask https://ask.test/check: 403
// Forbidden". The URL in errors has no query and no password, as the
// query often carries an access token.
//
// Answers are cached per name (CacheTTL, DenyTTL), in a cache of at most
// CacheSize names, so a flood of distinct names holds bounded memory and
// a repeated name does not reach the endpoint again. Concurrent questions
// about one name share one request: a thousand simultaneous handshakes
// for a new name cost the endpoint one GET.
//
// Each caller waits on its own ctx; the request itself runs on a context
// detached from the caller's, bounded by Timeout, so that a handshake
// giving up does not cancel the answer the next handshake will use. A
// caller whose ctx ends first gets an error wrapping ctx.Err(), not
// ErrDenied.
//
// An AskURL must not be copied or have its fields changed after first
// use. It is safe for concurrent use.
type AskURL struct {
	// URL is the endpoint, an absolute http or https URL. It may have a
	// query of its own ("https://ask.test/check?token=T"); the domain
	// parameter is appended to it and must not already be in it. An
	// empty or invalid URL refuses every name.
	URL string

	// HTTPClient sends the requests. Nil means http.DefaultClient. Set
	// it to use a client certificate or a proxy; redirects are followed
	// as the client's CheckRedirect says.
	HTTPClient *http.Client

	// Timeout bounds each request, whatever HTTPClient's own timeout.
	// Zero means 5 s: an ask endpoint answers from a database lookup,
	// and the handshake waiting for it has a person behind it.
	Timeout time.Duration

	// CacheTTL is how long an allow is remembered. Zero means 1 minute:
	// long enough to cover the issuance that follows the first
	// handshake and its retries, short enough that a name the endpoint
	// stops allowing is refused soon after. Negative: not cached.
	CacheTTL time.Duration

	// DenyTTL is how long a refusal or a failure to get an answer is
	// remembered. Zero means 10 s: it absorbs a scanner or a browser
	// retrying a refused name, while a customer who has just added their
	// name waits only seconds. Negative: not cached.
	DenyTTL time.Duration

	// CacheSize is the most names whose answers are kept; beyond it the
	// least recently used answer is dropped. Zero means 10,000: at most
	// about 8 MB, all of them refused 250-byte names with their errors.
	CacheSize int

	// MaxInFlight is the most questions sent to URL at once. A question
	// that would be one more is not sent: the name is refused at once
	// with an error matching ErrAskBusy, and not cached (its next
	// handshake asks again). Zero means 64. Without it, a flood of
	// ClientHellos for random names, each reset at once, had thousands
	// of requests in flight (a trial's proxy ran out of file descriptors
	// and stopped accepting connections, and the ask service got the
	// whole flood).
	MaxInFlight int

	// MaxInFlightPerClient is the most of those questions the handshakes
	// of one client may have in flight at once, a client being what
	// IPLimiter counts as one (an IPv4 address or an IPv6 /64, from
	// WithClient). A question beyond it is refused as one beyond
	// MaxInFlight is. Zero means an eighth of MaxInFlight (8 of 64), at
	// least one: a flood from one address leaves the other slots to
	// everyone else. Questions without a client (renewals) count against
	// MaxInFlight only.
	MaxInFlightPerClient int

	flight   singleflight.Group
	slots    chan struct{} // MaxInFlight of them; made once (slotOnce)
	slotOnce sync.Once

	clientsMu sync.Mutex
	clients   map[netip.Addr]int // questions in flight by client key; no zero counts

	mu    sync.Mutex // guards cache
	cache lru[string, askAnswer]
}

// askAnswer is a cached decision.
type askAnswer struct {
	err     error // nil: allowed
	expires time.Time
}

// Decide asks URL about name, or answers from the cache.
func (a *AskURL) Decide(ctx context.Context, name string) error {
	if ans, ok := a.cached(name, time.Now()); ok {
		return ans.err
	}
	ch := a.flight.DoChan(name, func() (any, error) {
		// A flight that finished between our cache miss and this call
		// has stored its answer: use it rather than ask again.
		if ans, ok := a.cached(name, time.Now()); ok {
			return nil, ans.err
		}
		release, err := a.slot(ctx, name)
		if err != nil {
			return nil, err
		}
		defer release()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.timeout())
		defer cancel()
		err = a.ask(rctx, name)
		a.store(name, err, time.Now())
		return nil, err
	})
	select {
	case r := <-ch:
		return r.Err
	case <-ctx.Done():
		return fmt.Errorf("asking about %s: %w", name, ctx.Err())
	}
}

// ErrAskBusy is matched by the refusal of a name that would have been the
// question beyond AskURL.MaxInFlight. It matches ErrDenied too.
var ErrAskBusy = errors.New("too many questions to the ask endpoint in flight")

// slot takes one of the MaxInFlight slots for a question about name, and
// one of its client's MaxInFlightPerClient if ctx has a client (WithClient),
// or refuses name (ErrAskBusy) when either has none free; release gives
// them back.
func (a *AskURL) slot(ctx context.Context, name string) (release func(), err error) {
	a.slotOnce.Do(func() {
		n := a.MaxInFlight
		if n <= 0 {
			n = defaultAskInFlight
		}
		a.slots = make(chan struct{}, n)
	})
	client, hasClient := Client(ctx)
	key := clientKey(client)
	if hasClient && !a.takeClient(key) {
		_, where, _ := a.endpoint()
		return nil, fmt.Errorf("%w: %s: ask %s: not asked, %d questions for the handshakes of %s already in flight: %w",
			ErrDenied, name, where, a.perClient(), client, ErrAskBusy)
	}
	select {
	case a.slots <- struct{}{}:
		return func() {
			<-a.slots
			if hasClient {
				a.dropClient(key)
			}
		}, nil
	default:
		if hasClient {
			a.dropClient(key)
		}
		_, where, _ := a.endpoint()
		return nil, fmt.Errorf("%w: %s: ask %s: not asked, %d questions already in flight: %w", ErrDenied, name, where, cap(a.slots), ErrAskBusy)
	}
}

// perClient is MaxInFlightPerClient with its default; a.slots made.
func (a *AskURL) perClient() int {
	if a.MaxInFlightPerClient > 0 {
		return a.MaxInFlightPerClient
	}
	return max(cap(a.slots)/8, 1)
}

// takeClient counts one more question in flight for the client key, unless
// it has perClient already.
func (a *AskURL) takeClient(key netip.Addr) bool {
	a.clientsMu.Lock()
	defer a.clientsMu.Unlock()
	if a.clients[key] >= a.perClient() {
		return false
	}
	if a.clients == nil {
		a.clients = make(map[netip.Addr]int)
	}
	a.clients[key]++
	return true
}

// dropClient counts one question less in flight for the client key.
func (a *AskURL) dropClient(key netip.Addr) {
	a.clientsMu.Lock()
	defer a.clientsMu.Unlock()
	if a.clients[key] <= 1 {
		delete(a.clients, key) // the map holds the clients in flight only
		return
	}
	a.clients[key]--
}

// ask sends one request and returns nil if the answer is 200 OK.
func (a *AskURL) ask(ctx context.Context, name string) error {
	u, where, err := a.endpoint()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDenied, name, err)
	}
	param := "domain=" + url.QueryEscape(name)
	if u.RawQuery == "" {
		u.RawQuery = param
	} else {
		u.RawQuery += "&" + param
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("%w: %s: ask %s: %w", ErrDenied, name, where, redact.Error(a.URL, err))
	}
	req.Header.Set("User-Agent", "certkeeper")
	resp, err := a.client().Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Say that the endpoint was slow, not only "context deadline
			// exceeded", whose deadline is ours.
			return fmt.Errorf("%w: %s: ask %s: no answer within %s: %w",
				ErrDenied, name, where, a.timeout(), redact.Error(a.URL, err))
		}
		return fmt.Errorf("%w: %s: ask %s: %w", ErrDenied, name, where, redact.Error(a.URL, err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAskBody))
	if resp.StatusCode != http.StatusOK {
		// The status text is ours, not the endpoint's reason phrase,
		// which it could fill with anything it wants in our logs.
		return fmt.Errorf("%w: %s: ask %s: %d %s",
			ErrDenied, name, where, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

// ErrInvalidAskURL is matched by the error of AskURL.Check (and of
// Config.Policy) for a URL that AskURL cannot ask: not an absolute http or
// https URL, or one that already has a domain parameter.
var ErrInvalidAskURL = errors.New("invalid ask URL")

// Check reports, before any name is decided, whether a.URL can be asked:
// nil, or an error matching ErrInvalidAskURL that says what is wrong. An
// AskURL whose URL fails it refuses every name.
func (a *AskURL) Check() error {
	if _, _, err := a.endpoint(); err != nil {
		return invalidAskURL{err}
	}
	return nil
}

// invalidAskURL is Check's error: endpoint's, matching ErrInvalidAskURL.
type invalidAskURL struct{ error }

func (e invalidAskURL) Is(target error) bool { return target == ErrInvalidAskURL }
func (e invalidAskURL) Unwrap() error        { return e.error }

// endpoint parses URL and returns it with its query untouched, and the
// form of it that errors show (redact.URL: no user information, query or
// fragment).
func (a *AskURL) endpoint() (*url.URL, string, error) {
	if a.URL == "" {
		return nil, "", errors.New("ask URL is empty")
	}
	where := redact.URL(a.URL)
	u, err := url.Parse(a.URL)
	if err != nil && strings.Contains(a.URL, "://") {
		return nil, "", fmt.Errorf("ask URL %s: %w", where, redact.Error(a.URL, err))
	}
	// Without a scheme ("127.0.0.1:9000/allowed"), url.Parse's own
	// error is about a colon in a path: say what is missing instead.
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, "", fmt.Errorf("ask URL %s: not an absolute http or https URL", where)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, "", fmt.Errorf("ask URL %s: query: %w", where, err)
	}
	if q.Has("domain") {
		return nil, "", fmt.Errorf("ask URL %s: already has a domain parameter", where)
	}
	u.Fragment, u.RawFragment = "", ""
	return u, where, nil
}

// cached returns the unexpired answer for name, if any.
func (a *AskURL) cached(name string, now time.Time) (askAnswer, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache.items == nil {
		return askAnswer{}, false
	}
	ans, ok := a.cache.get(name)
	if !ok {
		return askAnswer{}, false
	}
	if !now.Before(ans.expires) {
		a.cache.remove(name)
		return askAnswer{}, false
	}
	return ans, true
}

// store remembers the answer err for name, unless its kind is not cached.
func (a *AskURL) store(name string, err error, now time.Time) {
	ttl := a.DenyTTL
	if err == nil {
		ttl = a.CacheTTL
	}
	switch {
	case ttl < 0:
		return
	case ttl == 0 && err == nil:
		ttl = defaultAskAllowTTL
	case ttl == 0:
		ttl = defaultAskDenyTTL
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache.items == nil {
		size := a.CacheSize
		if size <= 0 {
			size = defaultAskCacheSize
		}
		a.cache.init(size)
	}
	a.cache.put(name, askAnswer{err: err, expires: now.Add(ttl)})
}

func (a *AskURL) client() *http.Client {
	if a.HTTPClient != nil {
		return a.HTTPClient
	}
	return http.DefaultClient
}

func (a *AskURL) timeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return defaultAskTimeout
}
