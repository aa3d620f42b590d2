package testca

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// endpointPaths maps the endpoint names the fault knobs take (lower case,
// without hyphens) to the start of Pebble's paths for them (wfe/wfe.go at
// the pinned version).
var endpointPaths = map[string]string{
	"directory":   "/dir",
	"newnonce":    "/nonce-plz",
	"newaccount":  "/sign-me-up",
	"account":     "/my-account/",
	"orders":      "/list-orderz/",
	"neworder":    "/order-plz",
	"order":       "/my-order/",
	"finalize":    "/finalize-order/",
	"authz":       "/authZ/",
	"challenge":   "/chalZ/",
	"certificate": "/certZ/",
	"revokecert":  "/revoke-cert",
	"keychange":   "/rollover-account-key",
	"renewalinfo": "/draft-ietf-acme-ari-03/renewalInfo",
}

// endpointMatcher returns a test of a request path for an endpoint as the
// fault knobs take it:
//
//   - an ACME resource: "directory", "new-nonce", "new-account", "account",
//     "orders", "new-order", "order", "finalize", "authz", "challenge",
//     "certificate", "revoke-cert", "key-change", "renewal-info" (or the
//     directory's camelCase spelling, "newOrder");
//   - a string starting with "/": any path containing it;
//   - "": every request.
//
// Any other name is a mistake in the test, and endpointMatcher panics.
func endpointMatcher(endpoint string) func(path string) bool {
	switch {
	case endpoint == "":
		return func(string) bool { return true }
	case strings.HasPrefix(endpoint, "/"):
		return func(path string) bool { return strings.Contains(path, endpoint) }
	}
	prefix, ok := endpointPaths[strings.ToLower(strings.ReplaceAll(endpoint, "-", ""))]
	if !ok {
		panic(fmt.Sprintf("testca: unknown ACME endpoint %q: want new-order, finalize, ... (see RateLimit), \"\" or a path starting with /", endpoint))
	}
	return func(path string) bool { return strings.HasPrefix(path, prefix) }
}

// FaultProxy is an HTTPS reverse proxy on a free 127.0.0.1 port in front of
// a Pebble started by [Start], with knobs that make the CA slow, flaky, rate
// limited, unavailable or unreachable while a test runs. It presents the
// same certificate as Pebble, so the CA's RootPool and HTTPClient work
// through it, and it keeps clients on itself: Pebble builds every URL from
// the request's Host, which the proxy passes on, and the proxy rewrites any
// URL of Pebble's own address in headers and bodies as well.
//
// The proxy speaks HTTP/1.1 only. Go's http.Transport silently retries a
// GET (or HEAD) that a dropped connection interrupted when the connection
// had been used before; ACME requests are POSTs and see the error.
//
// Its methods are safe for concurrent use.
type FaultProxy struct {
	target *url.URL // Pebble's origin, https://127.0.0.1:PORT
	path   string   // the directory's path
	addr   string   // the proxy's host:port, the same after Down and Up
	rp     *httputil.ReverseProxy
	up     *http.Transport // to Pebble
	srv    *http.Server
	tlsCfg *tls.Config

	requests atomic.Int64

	mu         sync.Mutex // guards the fields below
	ln         net.Listener
	serving    sync.WaitGroup // the Serve goroutines
	conns      map[net.Conn]struct{}
	paused     chan struct{}          // nil, or closed by Resume
	pauseAt    func(path string) bool // which requests paused holds before Pebble
	pauseAfter func(path string) bool // which replies paused holds after Pebble
	held       int                    // replies PauseAfter has held
	lose       []*fault               // LoseReply's: n and match only
	drop       int
	delay      time.Duration
	faults     []*fault
	window     *[2]time.Time // RenewalWindow's, or nil
	stall      bool          // StallOrders'
	seen       []string      // the path of every request
	closed     bool
}

// fault answers the next n requests that match with status.
type fault struct {
	n          int
	status     int
	problem    string
	retryAfter time.Duration
	match      func(path string) bool
}

// NewFaultProxy starts a proxy in front of ca's ACME listener and stops it
// when the test ends. With no knob turned it forwards every request
// unchanged. It keeps working across ca.Restart, which keeps the address.
func NewFaultProxy(t testing.TB, ca *CA) *FaultProxy {
	t.Helper()
	p := &FaultProxy{
		target: &url.URL{Scheme: "https", Host: ca.listenAddr},
		path:   "/dir",
		conns:  make(map[net.Conn]struct{}),
		tlsCfg: &tls.Config{Certificates: []tls.Certificate{ca.id.cert}, NextProtos: []string{"http/1.1"}},
		up:     newTransport(ca.id.pool()),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.target)
			// Pebble checks the JWS "url" against https://<Host><path> and
			// builds its URLs from Host: keep the client's, the proxy's.
			pr.Out.Host = pr.In.Host
		},
		Transport:      p.up,
		ModifyResponse: p.rewrite,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, errLostReply) {
				panic(http.ErrAbortHandler) // the connection closes, no reply
			}
			w.WriteHeader(http.StatusBadGateway)
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ErrorLog:          log.New(io.Discard, "", 0), // clients that hang up are not news
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         p.trackConn,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // no HTTP/2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testca: fault proxy: %v", err)
	}
	p.addr = ln.Addr().String()
	p.mu.Lock()
	p.serve(ln)
	p.mu.Unlock()
	t.Cleanup(p.close)
	return p
}

// DirectoryURL returns the directory URL through the proxy.
func (p *FaultProxy) DirectoryURL() string { return "https://" + p.addr + p.path }

// Addr returns the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.addr }

// serve starts serving ln. p.mu must be held.
func (p *FaultProxy) serve(ln net.Listener) {
	p.ln = ln
	tl := tls.NewListener(ln, p.tlsCfg)
	p.serving.Add(1)
	go func() {
		defer p.serving.Done()
		_ = p.srv.Serve(tl) // returns when Down or close closes ln
	}()
}

func (p *FaultProxy) trackConn(c net.Conn, state http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch state {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateClosed, http.StateHijacked:
		delete(p.conns, c)
	}
}

func (p *FaultProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
	p.mu.Unlock()
	_ = p.srv.Close() // closes the listener and every connection
	p.serving.Wait()
	p.up.CloseIdleConnections()
}

// Pause makes requests hang: each one waits, before it reaches Pebble, until
// Resume, Down, the end of the test, or its client gives up. Connections are
// still accepted.
func (p *FaultProxy) Pause() { p.PauseAt("") }

// PauseAt is Pause for the requests to endpoint only (as for RateLimit; ""
// is every request): PauseAt("finalize") lets a client create its order and
// have it validated, then holds it at the finalize request, as a CA that
// hangs while it signs does. A later Pause or PauseAt replaces the endpoint
// of a pause not yet resumed.
func (p *FaultProxy) PauseAt(endpoint string) { p.pause(endpointMatcher(endpoint), nil) }

// PauseAfter is PauseAt with the requests let through to Pebble and their
// replies held: PauseAfter("finalize") has the CA sign the certificate
// while its client, as one killed at that moment or cut off from the
// network, never hears of it. Resume lets the held replies go on.
func (p *FaultProxy) PauseAfter(endpoint string) { p.pause(nil, endpointMatcher(endpoint)) }

// pause holds the requests at matches before Pebble, or their replies
// after matches, until Resume.
func (p *FaultProxy) pause(at, after func(path string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	if p.paused == nil {
		p.paused = make(chan struct{})
	}
	p.pauseAt, p.pauseAfter = at, after
}

// LoseReply lets the next n requests to endpoint reach Pebble and closes
// their connections without a reply, as a network that fails after the CA
// acted does: LoseReply("finalize", 1) has the CA sign a certificate its
// client never hears of, and the client's retry meets an order already
// finalized.
func (p *FaultProxy) LoseReply(endpoint string, n int) {
	match := endpointMatcher(endpoint)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lose = append(p.lose, &fault{n: n, match: match})
}

// errLostReply is what rewrite returns for a reply LoseReply drops.
var errLostReply = errors.New("testca fault proxy: reply lost")

// loseReply reports whether the reply to req is one LoseReply drops.
func (p *FaultProxy) loseReply(req *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.lose {
		if f.n > 0 && f.match(req.URL.Path) {
			f.n--
			return true
		}
	}
	return false
}

// Held returns how many replies PauseAfter has held, since the proxy
// started: each is a request Pebble has answered.
func (p *FaultProxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// holdReply holds the reply to req while a PauseAfter that matches it is
// in force, until Resume or until the client gives up (then it returns
// the context's error, and the client gets no answer).
func (p *FaultProxy) holdReply(req *http.Request) error {
	p.mu.Lock()
	paused := p.paused
	if paused == nil || p.pauseAfter == nil || !p.pauseAfter(req.URL.Path) {
		p.mu.Unlock()
		return nil
	}
	p.held++
	p.mu.Unlock()
	select {
	case <-paused:
		return nil
	case <-req.Context().Done():
		return req.Context().Err()
	}
}

// Resume lets paused and later requests through.
func (p *FaultProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused != nil {
		close(p.paused)
		p.paused = nil
	}
}

// Down makes the CA unreachable: it closes the listener, so connections are
// refused, and every open connection, so requests in flight fail. Up opens
// the same port again.
func (p *FaultProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		return
	}
	p.ln.Close()
	p.ln = nil
	for c := range p.conns {
		c.Close()
	}
}

// Up undoes Down, listening on the same address again. It fails the test t
// if another process took the port meanwhile.
func (p *FaultProxy) Up(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.closed {
		return
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("testca: fault proxy up again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// Drop makes the proxy close the connection of each of the next n requests
// instead of answering it.
func (p *FaultProxy) Drop(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = n
}

// Delay makes every request wait d before it is forwarded (or faulted).
// Zero removes the delay.
func (p *FaultProxy) Delay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// RateLimit answers the next n requests to endpoint with 429 Too Many
// Requests and the problem document urn:ietf:params:acme:error:rateLimited,
// as Let's Encrypt does, with Retry-After in seconds (rounded up; none if
// zero). Those requests do not reach Pebble.
//
// endpoint is an ACME resource ("new-nonce", "new-account", "account",
// "orders", "new-order", "order", "finalize", "authz", "challenge",
// "certificate", "revoke-cert", "key-change", "renewal-info", "directory";
// the directory's spelling, "newOrder", works too), a string starting with
// "/" that the path must contain, or "" for every request. Any other name
// panics. Faults apply in the order they were added; each one counts down
// its own n.
func (p *FaultProxy) RateLimit(endpoint string, n int, retryAfter time.Duration) {
	p.addFault(&fault{n: n, status: http.StatusTooManyRequests, retryAfter: retryAfter,
		match: endpointMatcher(endpoint), problem: "urn:ietf:params:acme:error:rateLimited"})
}

// ServiceUnavailable answers the next n requests to endpoint (as for
// RateLimit) with 503 Service Unavailable, the problem document
// urn:ietf:params:acme:error:serverInternal and Retry-After in seconds
// (rounded up; none if zero), as a CA in maintenance does.
func (p *FaultProxy) ServiceUnavailable(endpoint string, n int, retryAfter time.Duration) {
	p.addFault(&fault{n: n, status: http.StatusServiceUnavailable, retryAfter: retryAfter,
		match: endpointMatcher(endpoint), problem: "urn:ietf:params:acme:error:serverInternal"})
}

// RenewalWindow answers every renewalInfo request (RFC 9773) with the
// window start to end and Retry-After: 21600, as a CA does, instead of
// Pebble's: a window already begun for a certificate just issued, as a CA
// replacing certificates (or a misconfigured one) sends. Pebble never sees
// those requests. Equal zero times turn it off.
func (p *FaultProxy) RenewalWindow(start, end time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.window = nil
	if !start.IsZero() || !end.IsZero() {
		p.window = &[2]time.Time{start, end}
	}
}

// StallOrders makes every order look "processing" while on is true: an
// order Pebble has signed is answered with status processing and without
// its certificate URL, as a CA whose signing hangs answers. Pebble itself
// is unchanged: StallOrders(false) shows the orders as they are.
func (p *FaultProxy) StallOrders(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall = on
}

// stalled rewrites body, the JSON answer to a request for path, as
// StallOrders says.
func (p *FaultProxy) stalled(path string, body []byte) []byte {
	p.mu.Lock()
	stall := p.stall
	p.mu.Unlock()
	if !stall || !endpointMatcher("order")(path) && !endpointMatcher("finalize")(path) {
		return body
	}
	var order map[string]any
	if json.Unmarshal(body, &order) != nil || order["status"] != "valid" {
		return body
	}
	order["status"] = "processing"
	delete(order, "certificate")
	out, err := json.Marshal(order)
	if err != nil {
		return body
	}
	return out
}

// writeWindow answers a renewalInfo request with w.
func writeWindow(w http.ResponseWriter, win [2]time.Time) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "21600")
	json.NewEncoder(w).Encode(map[string]any{
		"suggestedWindow": map[string]string{"start": win[0].UTC().Format(time.RFC3339), "end": win[1].UTC().Format(time.RFC3339)},
	})
}

func (p *FaultProxy) addFault(f *fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, f)
}

// Requests returns how many requests the proxy has received, faulted or not.
func (p *FaultProxy) Requests() int { return int(p.requests.Load()) }

// Count returns how many of the requests received so far went to endpoint
// (as for RateLimit; "" counts all).
func (p *FaultProxy) Count(endpoint string) int {
	match := endpointMatcher(endpoint)
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, path := range p.seen {
		if match(path) {
			n++
		}
	}
	return n
}

// serveHTTP applies the knobs in order (pause, delay, drop, faults) and
// forwards what is left to Pebble.
func (p *FaultProxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	// Read the (small) body first: only then does net/http watch the
	// connection, so that a client hanging up ends a paused request.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		panic(http.ErrAbortHandler) // the client is gone: no answer, not an empty 200
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	p.mu.Lock()
	p.seen = append(p.seen, r.URL.Path)
	paused := p.paused
	if paused != nil && (p.pauseAt == nil || !p.pauseAt(r.URL.Path)) {
		paused = nil
	}
	delay := p.delay
	p.mu.Unlock()

	// A client that gave up on a held request gets no answer at all: an
	// empty 200 written as the handler returns could reach a client that
	// is still reading (seen as "response Content-Type is" under load).
	if paused != nil {
		select {
		case <-paused:
		case <-r.Context().Done():
			panic(http.ErrAbortHandler)
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			panic(http.ErrAbortHandler)
		}
	}

	p.mu.Lock()
	drop := p.drop > 0
	if drop {
		p.drop--
	}
	var f *fault
	window := p.window
	if window != nil && !endpointMatcher("renewal-info")(r.URL.Path) {
		window = nil
	}
	if !drop {
		for _, cand := range p.faults {
			if cand.n > 0 && cand.match(r.URL.Path) {
				cand.n--
				f = cand
				break
			}
		}
	}
	p.mu.Unlock()

	switch {
	case drop:
		// The documented way to abort a handler: the server closes the
		// connection without writing a response.
		panic(http.ErrAbortHandler)
	case f != nil:
		p.writeProblem(w, r, f)
	case window != nil:
		writeWindow(w, *window)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// writeProblem answers for a fault. Like a real CA it puts a fresh nonce
// in the answer to a POST (RFC 8555 §6.5 says servers SHOULD), taken from
// Pebble, so that the client's next request does not fail on its nonce.
func (p *FaultProxy) writeProblem(w http.ResponseWriter, r *http.Request, f *fault) {
	if r.Method == http.MethodPost {
		if nonce := p.nonce(r.Context()); nonce != "" {
			w.Header().Set("Replay-Nonce", nonce)
		}
	}
	if f.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatUint(seconds(f.retryAfter), 10))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(f.status)
	json.NewEncoder(w).Encode(map[string]any{
		"type":   f.problem,
		"detail": fmt.Sprintf("testca fault proxy: %s for %s %s", http.StatusText(f.status), r.Method, r.URL.Path),
		"status": f.status,
	})
}

// nonce fetches a fresh nonce from Pebble, or returns "".
func (p *FaultProxy) nonce(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, p.target.String()+endpointPaths["newnonce"], nil)
	if err != nil {
		return ""
	}
	req.Header.Set("User-Agent", "certkeeper-testca-faultproxy")
	req.Host = p.addr
	resp, err := p.up.RoundTrip(req)
	if err != nil {
		return ""
	}
	resp.Body.Close()
	return resp.Header.Get("Replay-Nonce")
}

// rewrite holds the reply while PauseAfter says so, then points any URL
// of Pebble's own origin at the proxy, in the
// Location and Link headers and in JSON bodies. Pebble builds its URLs from
// the Host the proxy passes on, so this is a safety net for URLs built
// otherwise.
func (p *FaultProxy) rewrite(resp *http.Response) error {
	if err := p.holdReply(resp.Request); err != nil {
		return err
	}
	if p.loseReply(resp.Request) {
		resp.Body.Close()
		return errLostReply
	}
	from, to := p.target.String(), "https://"+p.addr
	for _, h := range []string{"Location", "Link"} {
		vals := resp.Header.Values(h)
		for i, v := range vals {
			vals[i] = strings.ReplaceAll(v, from, to)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	resp.Body.Close()
	if err != nil {
		return err
	}
	if bytes.Contains(body, []byte(from)) {
		body = bytes.ReplaceAll(body, []byte(from), []byte(to))
	}
	body = p.stalled(resp.Request.URL.Path, body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}
