// Package certclient lets a Go TLS server take its certificates from a
// certkeeper certificate server ("certkeeper server", package certserver)
// instead of obtaining them itself: set tls.Config.GetCertificate to a
// Client's GetCertificate.
//
// A Client keeps what it fetched in memory for the ttl_seconds the server
// answered, refreshes it in the background before then, and, while the
// server is unreachable, keeps serving what it holds until the
// certificate itself expires (stale-while-error). A handshake waits for
// the server only for a name it has never fetched, or whose certificate
// it dropped: memory is bounded by CacheSize, not by the names a fleet
// serves (the least recently asked for go first).
//
// What it does not do: it stores nothing on disk and never talks to a CA.
package certclient

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/every"
	"github.com/certkeeper/certkeeper/internal/redact"
	"golang.org/x/sync/singleflight"
)

// Defaults of Client's zero fields.
const (
	// DefaultTimeout bounds one request to the server: longer than the
	// server's default --issue-timeout (30 s), so a first request for a
	// new name sees the issuance finish.
	DefaultTimeout = 45 * time.Second
	// DefaultRetry is how soon a failed background refresh is tried
	// again.
	DefaultRetry = 5 * time.Second
	// DefaultCacheSize bounds the certificates held in memory, as the
	// Manager's CacheSize does.
	DefaultCacheSize = 10_000
)

const (
	maxBody       = 1 << 20          // an answer is a few KiB
	deniedFor     = 30 * time.Second // a 403 is remembered this long
	maxDenied     = 10_000
	unusedFor     = 24 * time.Hour // a name no handshake asked for this long is dropped
	refreshTick   = time.Second
	refreshMargin = time.Second // refresh at least this long before expiry
)

// Client fetches certificates from a certkeeper server. Set the fields
// before first use; they must not change afterwards. Close stops its
// background refreshes.
type Client struct {
	// URL is the server's base URL, e.g. "http://127.0.0.1:8999".
	URL string
	// Fallbacks are the base URLs of more servers on the same storage
	// (they hand out the same certificates, docs/server.md "Several
	// servers"). When the server asked cannot be reached or answers
	// with a 5xx, the next is asked, and the one that answered is asked
	// first from then on. An answer (200, a 403 refusal, a 401) is not
	// asked again elsewhere.
	Fallbacks []string
	// Token is the bearer token (a line of the server's --token-file).
	Token string
	// TLSConfig is the TLS client configuration of an https:// URL (a
	// server started with --api-cert): RootCAs trusting the server's
	// certificate when a private CA issued it, Certificates for a server
	// that takes client certificates (--client-ca). Nil means the
	// system's roots and no client certificate. It is ignored when
	// HTTPClient is set.
	TLSConfig *tls.Config
	// HTTPClient makes the requests, for what TLSConfig does not cover
	// (a proxy, a custom dialer). Nil means a client that gives up
	// connecting after 5 s and uses TLSConfig. Each request is bounded by
	// its Timeout, or by DefaultTimeout when that is zero (Go's "no
	// limit"): a first fetch waits that long for an issuance, a refresh
	// that long before it is tried again.
	HTTPClient *http.Client
	// Retry is how soon a failed background refresh is tried again. Zero
	// means 5 seconds.
	Retry time.Duration
	// Logger receives the client's logs. Nil means slog.Default().
	Logger *slog.Logger
	// CacheSize bounds the certificates held in memory: beyond it, those
	// no handshake asked for the longest are dropped (a sixteenth at a
	// time) and fetched again when asked for. Zero means
	// DefaultCacheSize. Names unused for a day are dropped in any case.
	CacheSize int

	once        sync.Once
	urls        []string     // URL, then Fallbacks
	defaultHTTP *http.Client // when HTTPClient is nil
	current     atomic.Int32 // index in urls of the server asked first
	downLog     every.Gate   // a server that did not answer is logged once a minute
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	certs       sync.Map     // name → *entry
	held        atomic.Int64 // entries in certs
	evictMu     sync.Mutex   // one eviction at a time
	denied      sync.Map     // name → time.Time until which a 403 stands
	nDenied     atomic.Int64
	flight      singleflight.Group
	started     atomic.Bool
	mu          sync.Mutex // guards closed and wg.Add
	closed      bool
}

// entry is one name's certificate in memory. cert and its times are
// replaced together, never modified.
type entry struct {
	state    atomic.Pointer[fetched]
	lastUsed atomic.Int64 // unix milliseconds (stored when it changes: at most once a millisecond)
	busy     atomic.Bool  // a refresh is running
}

type fetched struct {
	cert      *tls.Certificate
	notAfter  time.Time
	refreshAt time.Time
	// failures counts the refreshes that failed in a row, for their
	// backoff and for logging the first of them (refresh).
	failures int
}

// Certificate is a certificate as the server answered it.
type Certificate struct {
	Certificate *tls.Certificate // with Leaf and OCSPStaple set
	Names       []string
	NotAfter    time.Time
	TTL         time.Duration
	SelfSigned  bool
}

// StatusError is a non-200 answer of the server.
type StatusError struct {
	Name       string
	StatusCode int
	Message    string
	RetryAfter time.Duration // from Retry-After, when given
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("certkeeper server: %s: %d %s: %s", e.Name, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

func (c *Client) init() {
	c.once.Do(func() {
		c.ctx, c.cancel = context.WithCancel(context.Background())
		c.urls = append([]string{c.URL}, c.Fallbacks...)
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
		if c.TLSConfig != nil {
			t.TLSClientConfig = c.TLSConfig.Clone()
		}
		c.defaultHTTP = &http.Client{Timeout: DefaultTimeout, Transport: t}
	})
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	c.init()
	return c.defaultHTTP
}

// requestTimeout bounds one request to the server: HTTPClient's Timeout,
// or DefaultTimeout when it sets none (an http.Client's zero Timeout is no
// limit, which would leave a request, and a handshake waiting for it,
// bounded by nothing).
func (c *Client) requestTimeout() time.Duration {
	if t := c.httpClient().Timeout; t > 0 {
		return t
	}
	return DefaultTimeout
}

// dialTimeout bounds connecting to a server with the default HTTPClient:
// a server that does not answer at all (a host that is down, a dropped
// SYN) is given up on in seconds, and the next of Fallbacks asked, rather
// than after the whole DefaultTimeout meant for an issuance.
const dialTimeout = 5 * time.Second

func (c *Client) retry() time.Duration {
	if c.Retry > 0 {
		return c.Retry
	}
	return DefaultRetry
}

// GetCertificate returns the certificate for hello's server name, for
// tls.Config.GetCertificate: from memory when it holds one that has not
// expired (starting a background refresh when its ttl has passed), else
// from the server, waiting as long as the handshake's context allows.
func (c *Client) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.init()
	name := hello.ServerName
	now := time.Now()
	if v, ok := c.certs.Load(name); ok {
		if cert := c.serve(v.(*entry), name, now); cert != nil {
			return cert, nil
		}
	}
	norm, err := hostname.Normalize(name)
	if err != nil {
		return nil, fmt.Errorf("certclient: %w", err)
	}
	if v, ok := c.certs.Load(norm); ok {
		if cert := c.serve(v.(*entry), norm, now); cert != nil {
			return cert, nil
		}
	}
	if v, ok := c.denied.Load(norm); ok && now.Before(v.(time.Time)) {
		return nil, fmt.Errorf("certclient: %s: refused by the server (cached)", norm)
	}
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ch := c.flight.DoChan(norm, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.requestTimeout()+time.Second)
		defer cancel()
		return c.load(ctx, norm)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*tls.Certificate), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("certclient: %s: %w", norm, ctx.Err())
	}
}

// serve returns e's certificate unless it has expired, starting a refresh
// when its ttl has passed.
func (c *Client) serve(e *entry, name string, now time.Time) *tls.Certificate {
	f := e.state.Load()
	if !now.Before(f.notAfter) {
		return nil
	}
	if s := now.UnixMilli(); e.lastUsed.Load() != s {
		e.lastUsed.Store(s)
	}
	if !now.Before(f.refreshAt) {
		c.refreshAsync(e, name)
	}
	return f.cert
}

// load fetches name and keeps it (the first fetch of a name).
func (c *Client) load(ctx context.Context, name string) (*tls.Certificate, error) {
	if v, ok := c.certs.Load(name); ok {
		if f := v.(*entry).state.Load(); time.Now().Before(f.notAfter) {
			return f.cert, nil // fetched while this flight was queued
		}
	}
	got, err := c.Fetch(ctx, name)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && se.StatusCode == http.StatusForbidden {
			if c.nDenied.Add(1) > maxDenied {
				c.denied.Clear()
				c.nDenied.Store(0)
			}
			c.denied.Store(name, time.Now().Add(deniedFor))
		}
		return nil, err
	}
	e := &entry{}
	e.lastUsed.Store(time.Now().UnixMilli())
	e.state.Store(newFetched(got, time.Now()))
	if _, replaced := c.certs.Swap(name, e); !replaced && c.held.Add(1) > int64(c.cacheSize()) {
		c.evict()
	}
	c.startRefresher()
	return got.Certificate, nil
}

func (c *Client) cacheSize() int {
	if c.CacheSize > 0 {
		return c.CacheSize
	}
	return DefaultCacheSize
}

// evict drops the entries no handshake asked for the longest, down to
// CacheSize less a sixteenth: one sort of the entries per that many new
// names, on the path of a first fetch (which waited for the server).
// Concurrent callers leave it to the one evicting.
func (c *Client) evict() {
	if !c.evictMu.TryLock() {
		return
	}
	defer c.evictMu.Unlock()
	type held struct {
		name string
		e    *entry
		used int64
	}
	var all []held
	c.certs.Range(func(k, v any) bool {
		e := v.(*entry)
		all = append(all, held{k.(string), e, e.lastUsed.Load()})
		return true
	})
	size := c.cacheSize()
	drop := len(all) - (size - size/16)
	if drop <= 0 {
		return
	}
	slices.SortFunc(all, func(a, b held) int { return cmp.Compare(a.used, b.used) })
	for _, h := range all[:drop] {
		c.forget(h.name, h.e)
	}
}

// forget drops name's entry e (not a newer one).
func (c *Client) forget(name string, e *entry) {
	if c.certs.CompareAndDelete(name, e) {
		c.held.Add(-1)
	}
}

// newFetched is got as held from now: asked for again after its ttl, and
// in any case before it expires.
func newFetched(got *Certificate, now time.Time) *fetched {
	at := now.Add(got.TTL)
	if limit := got.NotAfter.Add(-refreshMargin); at.After(limit) {
		at = limit
	}
	return &fetched{cert: got.Certificate, notAfter: got.NotAfter, refreshAt: at}
}

// refreshAsync refreshes name in the background, once at a time.
func (c *Client) refreshAsync(e *entry, name string) {
	if !e.busy.CompareAndSwap(false, true) {
		return
	}
	if !c.background(func() {
		defer e.busy.Store(false)
		c.refresh(name, e)
	}) {
		e.busy.Store(false)
	}
}

// background runs f in a goroutine that Close waits for, unless the
// Client is closed.
func (c *Client) background(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

// refresh fetches name again. On failure the certificate in memory keeps
// serving until it expires, and the next attempt comes after Retry,
// doubling with each failure in a row up to refreshBackoffMax (a server
// down, or a token it no longer accepts, cost a request and a log line
// every 5 s for each name held); the first failure is logged at Warn,
// the others at Debug. A 403, the server's answer that this client may
// not have the name (its token's names= changed), ends serving it: the
// server may have revoked and replaced it meanwhile, which this client
// could never learn.
func (c *Client) refresh(name string, e *entry) {
	ctx, cancel := context.WithTimeout(c.ctx, c.requestTimeout())
	defer cancel()
	got, err := c.Fetch(ctx, name)
	now := time.Now()
	old := e.state.Load()
	if err == nil {
		if old.failures > 0 {
			c.logger().Info("refreshing a certificate from the server works again", slog.String("name", name), slog.Int("failures", old.failures))
		}
		e.state.Store(newFetched(got, now))
		return
	}
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusForbidden {
		c.forget(name, e)
		c.logger().Warn("the server no longer lets this client have the name: its certificate is no longer served",
			slog.String("name", name), slog.Any("err", err))
		return
	}
	wait := min(c.retry()<<min(old.failures, 16), max(refreshBackoffMax, c.retry()))
	if se != nil && se.RetryAfter > wait {
		wait = se.RetryAfter
	}
	next := now.Add(wait)
	if limit := old.notAfter.Add(-refreshMargin); next.After(limit) && now.Before(limit) {
		next = limit
	}
	e.state.Store(&fetched{cert: old.cert, notAfter: old.notAfter, refreshAt: next, failures: old.failures + 1})
	level := slog.LevelWarn
	if old.failures > 0 {
		level = slog.LevelDebug
	}
	c.logger().Log(ctx, level, "refreshing a certificate from the server failed; serving the one held until it expires (further failures in a row are logged at debug)",
		slog.String("name", name), slog.Time("not_after", old.notAfter), slog.Time("retry_at", next), slog.Int("failures", old.failures+1), slog.Any("err", err))
}

// refreshBackoffMax caps the wait between failed refreshes of a name.
const refreshBackoffMax = 10 * time.Minute

// startRefresher starts the goroutine that refreshes held certificates
// when their ttl passes, even with no handshake asking, and drops names
// unused for a day.
func (c *Client) startRefresher() {
	if !c.started.CompareAndSwap(false, true) {
		return
	}
	c.background(func() {
		t := time.NewTicker(refreshTick)
		defer t.Stop()
		for {
			select {
			case <-c.ctx.Done():
				return
			case now := <-t.C:
				c.certs.Range(func(k, v any) bool {
					e := v.(*entry)
					f := e.state.Load()
					switch {
					case now.Sub(time.UnixMilli(e.lastUsed.Load())) > unusedFor || !now.Before(f.notAfter):
						c.forget(k.(string), e)
					case !now.Before(f.refreshAt):
						c.refreshAsync(e, k.(string))
					}
					return true
				})
			}
		}
	})
}

// Held returns how many certificates the Client holds in memory: at most
// CacheSize.
func (c *Client) Held() int { return int(c.held.Load()) }

// Close stops background refreshes and waits for them. Certificates held
// keep being served.
func (c *Client) Close() error {
	c.init()
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

// Fetch asks the server for name's certificate, bypassing the cache:
// URL, or the Fallbacks in turn when a server cannot be reached or
// answers with a 5xx.
func (c *Client) Fetch(ctx context.Context, name string) (*Certificate, error) {
	c.init()
	n := len(c.urls)
	first := int(c.current.Load())
	var failed []error
	for i := range n {
		at := (first + i) % n
		got, err := c.fetchFrom(ctx, c.urls[at], name)
		if !serverDown(err) {
			if at != first {
				c.current.Store(int32(at))
			}
			if len(failed) > 0 && c.downLog.Allow(time.Minute) {
				c.logger().Warn("certificate server did not answer; another one did",
					slog.String("url", redact.URL(c.urls[first])), slog.String("answered", redact.URL(c.urls[at])), slog.Any("err", failed[0]))
			}
			return got, err
		}
		failed = append(failed, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(failed) == 1 {
		return nil, failed[0]
	}
	return nil, fmt.Errorf("certclient: %s: no certificate server answered: %w", name, errors.Join(failed...))
}

// serverDown reports whether err says the server could not be asked (a
// connection or transport error) or failed itself (a 5xx): another
// server may answer.
func serverDown(err error) bool {
	if err == nil {
		return false
	}
	if se, ok := errors.AsType[*StatusError](err); ok {
		return se.StatusCode >= 500
	}
	return errors.As(err, new(*transportError))
}

// transportError is a request that got no answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// fetchFrom asks the server at base for name's certificate.
func (c *Client) fetchFrom(ctx context.Context, base, name string) (*Certificate, error) {
	raw := base + "/v1/certificates/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("certclient: %s: server URL %s: %w", name, redact.URL(base), redact.Error(raw, err))
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, &transportError{fmt.Errorf("certclient: fetching %s from %s: %w", name, redact.URL(base), redact.Error(raw, err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &transportError{fmt.Errorf("certclient: fetching %s from %s: %w", name, redact.URL(base), err)}
	}
	if resp.StatusCode != http.StatusOK {
		se := &StatusError{Name: name, StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(trim(body, 200)))}
		if resp.StatusCode == http.StatusBadRequest && bytes.HasPrefix(body, []byte("Client sent an HTTP request to an HTTPS server")) {
			// Go's TLS listener answering plain HTTP: the server has --api-cert.
			se.Message += " (the server's API is HTTPS, certkeeper server --api-cert: use an https:// URL, with TLSConfig.RootCAs for a private CA)"
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			se.RetryAfter = time.Duration(s) * time.Second
		}
		return nil, se
	}
	return parse(name, body)
}

// answer is the JSON of GET /v1/certificates/{name} (docs/api.md).
type answer struct {
	Names      []string  `json:"names"`
	Cert       string    `json:"cert"`
	Key        string    `json:"key"`
	NotAfter   time.Time `json:"not_after"`
	TTLSeconds int64     `json:"ttl_seconds"`
	OCSPStaple []byte    `json:"ocsp_staple"`
	SelfSigned bool      `json:"self_signed"`
}

func parse(name string, body []byte) (*Certificate, error) {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("certclient: %s: decoding the answer: %w", name, err)
	}
	tc, err := tls.X509KeyPair([]byte(a.Cert), []byte(a.Key))
	if err != nil {
		return nil, fmt.Errorf("certclient: %s: the answer's certificate and key: %w", name, err)
	}
	tc.OCSPStaple = a.OCSPStaple
	if err := tc.Leaf.VerifyHostname(name); err != nil {
		return nil, fmt.Errorf("certclient: %s: the server answered a certificate for other names: %w", name, err)
	}
	return &Certificate{
		Certificate: &tc, Names: a.Names, NotAfter: tc.Leaf.NotAfter,
		TTL: max(time.Duration(a.TTLSeconds)*time.Second, time.Second), SelfSigned: a.SelfSigned,
	}, nil
}

func trim(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
