package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/certkeeper/certkeeper/internal/every"
	"github.com/certkeeper/certkeeper/internal/redact"
)

// Handler forwards each request to the backend its Router chooses, with
// httputil.ReverseProxy:
//
//   - the backend sees the client's Host header ("a.test"), not its own
//     address;
//   - X-Forwarded-For and X-Real-IP are the client's IP address,
//     X-Forwarded-Host the client's Host, X-Forwarded-Proto "https" (when
//     the client connection is TLS), X-Forwarded-Port the port it came to;
//     forwarding headers sent by the client (Forwarded, any X-Forwarded-*,
//     True-Client-IP and the like, also spelt with underscores) are
//     dropped, since on the Internet side of a TLS terminator they can
//     only be forged;
//   - hop-by-hop headers are removed (RFC 9110 §7.6.1), and Upgrade
//     requests (WebSocket) are passed through on a hijacked connection;
//   - every chunk the backend writes is flushed to the client at once
//     (FlushInterval -1), so server-sent events and other streamed
//     responses are not held back;
//   - a backend that cannot be reached, or fails before its response
//     header, gets the client a 502 Bad Gateway page that names no
//     backend, and a Warn log line with name, remote_ip, backend and err;
//     one that does not start its answer in time (the transport's
//     ResponseHeaderTimeout) a 504 page; a request a Server's Shutdown
//     cut before its backend answered (ErrServerStopping) a 503 page.
//
// The zero Handler works: it routes as the zero Router does (port 80 on
// the IP address the client connected to) with a transport from
// NewTransport. Its fields must not change after the first request.
type Handler struct {
	// Router chooses the backend. Nil: the zero Router's rule.
	Router *Router
	// Transport makes the requests to backends. Nil: a transport from
	// NewTransport, owned by the Handler and closed by
	// CloseIdleConnections.
	Transport http.RoundTripper
	// Logger receives backend failures (Warn) and requests that ended
	// before the backend answered (Debug). Nil: slog.Default().
	Logger *slog.Logger
	// AccessLog, when not nil, gets one Info line per request answered
	// ("request"): name, remote_ip, method, path (without the query,
	// which may hold secrets), proto, status, bytes (of the response
	// body), duration, backend (without credentials) and user_agent (its
	// first 256 bytes). An upgraded connection (WebSocket) is logged when
	// it ends, with status 101. Nil: no access log.
	AccessLog *slog.Logger
	// Traffic, when not nil, counts the requests answered and the backend
	// failures, for metrics (metrics.RegisterTraffic). Nil: not counted.
	Traffic *Traffic

	once sync.Once
	rp   *httputil.ReverseProxy
	own  *http.Transport // the transport from NewTransport, when Transport is nil
	// warned paces "backend unreachable" per backend (*every.Gate): a
	// backend that is down fails every request, and one Warn a minute says
	// it; the rest go to Debug. Bounded: cleared past maxWarned backends.
	warned  sync.Map
	nWarned atomic.Int32
}

// maxWarned bounds the backends Handler.warned paces: routes are
// configured, but without --backend every address the proxy listens on is
// one.
const maxWarned = 1024

// Timeouts and limits of NewTransport.
const (
	backendDialTimeout     = 10 * time.Second
	backendTLSTimeout      = 10 * time.Second
	backendHeaderTimeout   = 60 * time.Second
	backendIdleTimeout     = time.Second
	backendMaxIdle         = 512
	backendMaxIdlePerHost  = 64
	backendMaxHeaderBytes  = 1 << 20
	backendContinueTimeout = time.Second
	backendTCPKeepAlive    = 30 * time.Second
	proxyBufferSize        = 32 << 10
)

// NewTransport returns the transport a Handler uses when its Transport is
// nil, for callers who want to change one setting:
//
//   - connecting to a backend times out after 10 s, a TLS handshake with
//     an https backend after 10 s;
//   - a backend must start its response (send its header) within 60 s of
//     receiving the request; the body may then take as long as it takes;
//   - up to 64 idle connections per backend (512 in all) are kept for
//     1 s, so that a burst of requests does not open a connection each,
//     and no connection is reused that the backend may be closing: its
//     keep-alive timeout (gunicorn's 2 s, Node's and uvicorn's 5 s) ended
//     an idle connection as a POST was sent on it, which the transport
//     cannot send again (a trial's POSTs got a 502 one time in 14);
//   - response headers are limited to 1 MiB;
//   - no proxy from the environment (HTTPS_PROXY) is used: backends are
//     local, and library code reads no environment variables;
//   - compression is left to the client and the backend: the transport
//     neither asks for gzip nor decompresses, so bytes pass through as the
//     backend sent them.
func NewTransport() *http.Transport {
	d := &net.Dialer{Timeout: backendDialTimeout, KeepAlive: backendTCPKeepAlive}
	return &http.Transport{
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    backendTLSTimeout,
		ResponseHeaderTimeout:  backendHeaderTimeout,
		ExpectContinueTimeout:  backendContinueTimeout,
		IdleConnTimeout:        backendIdleTimeout,
		MaxIdleConns:           backendMaxIdle,
		MaxIdleConnsPerHost:    backendMaxIdlePerHost,
		MaxResponseHeaderBytes: backendMaxHeaderBytes,
		DisableCompression:     true,
	}
}

// ErrNoRoots is TrustBackends's error for roots that hold no PEM
// certificate.
var ErrNoRoots = errors.New("no PEM certificates found")

// TrustBackends makes t accept https:// backends whose certificates chain
// to the PEM certificates in roots, beside the system's roots: a private
// CA's root, or a backend's own self-signed certificate (which must then
// name the host the backend URL gives, as any certificate must). The
// check stays on: a backend whose certificate nothing trusts is
// unreachable, as with no TrustBackends.
func TrustBackends(t *http.Transport, roots []byte) error {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(roots) {
		return ErrNoRoots
	}
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	return nil
}

// ServeHTTP forwards r to its backend and copies the backend's response to
// w; see Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(h.init)
	if h.Traffic == nil && h.AccessLog == nil {
		h.serve(w, r, new(routed))
		return
	}
	rec, start, rt := &recorder{ResponseWriter: w}, time.Now(), new(routed)
	defer rec.finish(r, h.Traffic, h.AccessLog, start, rt) // deferred: the ReverseProxy panics to abort a response it cannot finish
	h.serve(rec, r, rt)
}

// serve forwards r as ServeHTTP says, noting in rt the name and backend
// the Router chose.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt *routed) {
	if httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c") {
		// Passed on, a backend's 101 would make the connection a raw
		// tunnel whose requests skip the Host check and the X-Forwarded-*
		// headers: HTTP/2 to the client is the TLS connection's ALPN.
		r.Header.Del("Upgrade")
	}
	name, backend, err := h.Router.route(r)
	rt.name, rt.backend = name, backend
	if errors.Is(err, ErrMisdirected) {
		// At debug: anyone may send these, one log line per request.
		h.logger().Debug("misdirected request", slog.String("name", name),
			slog.String("server_name", r.TLS.ServerName), slog.String("remote_ip", remoteIP(r)))
		http.Error(w, "421 misdirected request: the Host is not served on this connection", http.StatusMisdirectedRequest)
		return
	}
	if err != nil {
		h.logger().Warn("no backend for request",
			slog.String("name", name), slog.String("remote_ip", remoteIP(r)), slog.Any("err", err))
		h.Traffic.fail(FailureUnreachable)
		writeErrorPage(w, http.StatusBadGateway, badGatewayText)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		rt.body = &clientBody{ReadCloser: r.Body}
		r.Body = rt.body
	}
	defer h.noteCut(r, rt) // deferred: the ReverseProxy panics to abort the response it cannot finish
	h.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeKey{}, rt)))
}

// backendBody is a backend's response body, which notes that a read
// failed: the backend closed the connection (or crashed) mid-answer.
type backendBody struct {
	io.ReadCloser
	mu     sync.Mutex
	failed error
}

func (b *backendBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		b.failed = cmp.Or(b.failed, err)
		b.mu.Unlock()
	}
	return n, err
}

// err is the first read error of the body, nil if none (or no body).
func (b *backendBody) err() error {
	if b.ReadCloser == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

// noteCut logs a backend answer that ended before its end, which the
// client got cut short: with the site, backend, path and client, as
// nginx's "upstream prematurely closed connection" says (httputil's own
// line, now at Debug, said none of them, and a trial could not tell which
// of its backends was crashing). Once a minute per backend at Warn, as
// "backend unreachable" is; a client that went away is not the backend's
// fault and is not logged.
func (h *Handler) noteCut(r *http.Request, rt *routed) {
	err := rt.answer.err()
	if err == nil || r.Context().Err() != nil {
		return
	}
	backend := redact.URL(rt.backend.String())
	level := slog.LevelDebug
	if h.warnFor(backend) {
		level = slog.LevelWarn
	}
	h.Traffic.fail(FailureCut)
	h.logger().LogAttrs(r.Context(), level, "backend answer cut short", slog.String("name", rt.name), slog.String("backend", backend),
		slog.String("path", r.URL.Path), slog.String("remote_ip", remoteIP(r)), slog.Any("err", err))
}

// clientBody is a request's body as the client sends it, which notes
// that a read failed: a body the client got wrong (a bad chunk size) fails
// the round trip to the backend as an unreachable backend would.
type clientBody struct {
	io.ReadCloser
	failed atomic.Bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.failed.Store(true)
	}
	return n, err
}

// CloseIdleConnections closes the idle connections to backends of the
// transport the Handler owns (when its Transport is nil). A Server calls it
// after Shutdown.
func (h *Handler) CloseIdleConnections() {
	h.once.Do(h.init)
	if h.own != nil {
		h.own.CloseIdleConnections()
	}
}

func (h *Handler) init() {
	tr := h.Transport
	if tr == nil {
		h.own = NewTransport()
		tr = h.own
	}
	h.rp = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     tr,
		FlushInterval: -1,
		BufferPool:    &bufferPool{},
		ErrorHandler:  h.proxyError,
		ErrorLog:      newErrorLog(h.logger),
		ModifyResponse: func(resp *http.Response) error {
			// Not an upgrade's: the ReverseProxy needs its body to be the connection.
			if rt, ok := resp.Request.Context().Value(routeKey{}).(*routed); ok && resp.Body != nil && resp.Body != http.NoBody &&
				resp.StatusCode != http.StatusSwitchingProtocols {
				rt.answer.ReadCloser, resp.Body = resp.Body, &rt.answer
			}
			return nil
		},
	}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// routeKey is the context key of the *routed value ServeHTTP hands to
// rewrite and proxyError.
type routeKey struct{}

// routed is the Router's choice for one request, and its body.
type routed struct {
	name    string
	backend *url.URL
	body    *clientBody // nil: none
	answer  backendBody // the backend's response body, once it answered
}

// rewrite is the ReverseProxy's Rewrite hook. ReverseProxy has already
// removed hop-by-hop headers and the client's Forwarded and X-Forwarded-*
// headers from pr.Out; SetXForwarded sets the latter from the connection.
func rewrite(pr *httputil.ProxyRequest) {
	rt := pr.In.Context().Value(routeKey{}).(*routed)
	pr.SetURL(rt.backend)
	// SetURL sets the Host header to the backend's; name-based virtual
	// hosts behind the proxy need the client's.
	pr.Out.Host = pr.In.Host
	if pr.Out.Host == "" && pr.In.TLS != nil {
		pr.Out.Host = pr.In.TLS.ServerName
	}
	dropForged(pr.Out.Header)
	pr.SetXForwarded()
	if pr.In.Host == "" { // HTTP/1.0 without Host: the name of the TLS connection, not an empty header
		pr.Out.Header.Set("X-Forwarded-Host", pr.Out.Host)
	}
	// X-Real-IP is not a standard, but many backends (written for nginx)
	// trust it: a client must not be able to choose its value.
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		pr.Out.Header.Set("X-Real-Ip", ip)
	}
	pr.Out.Header.Set("X-Forwarded-Port", clientPort(pr.In))
}

// clientPort is the port the client connected to, as its URL had it: the
// Host's port, else the scheme's (443). Not the port the proxy listens
// on, which behind a port mapping (docker run -p 443:8443) is not the
// client's: a trial's backend built links to :8443.
func clientPort(r *http.Request) string {
	if _, port, err := net.SplitHostPort(r.Host); err == nil && port != "" {
		return port
	}
	if r.TLS == nil {
		return "80"
	}
	return "443"
}

// forged reports whether a request header (canonical name) is one that
// backends take from a proxy in front of them as the client's address or
// the request the proxy saw: from a client it can only be forged. Any
// name with "forwarded" in it or ending in "-ip" counts (X-Forwarded-*,
// Forwarded-For, True-Client-IP, CF-Connecting-IP, X-ProxyUser-IP, ...),
// and the few others frameworks read so (a list alone missed some: two
// security trials).
func forged(name string) bool {
	l := strings.ToLower(name)
	switch l {
	case "client-ip", "x-host", "x-original-host", "x-original-url", "x-rewrite-url", "front-end-https", "x-url-scheme",
		"x-scheme", "x-remote-addr":
		return true
	}
	return strings.Contains(l, "forwarded") || strings.HasSuffix(l, "-ip")
}

// dropForged removes from h the headers a client could forge to choose
// what the backend takes for its address or request (forged), in every
// spelling a backend may read as theirs: with
// underscores for dashes too ("X_Forwarded_For"), which CGI-style servers
// (Python's WSGI, PHP, Rack) merge with the dashed one into one
// HTTP_X_FORWARDED_FOR (a security trial's client chose its address at a
// werkzeug backend that way).
func dropForged(h http.Header) {
	for k := range h {
		name := http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
		if forged(name) {
			delete(h, k)
		}
	}
}

// proxyError is the ReverseProxy's ErrorHandler: the backend could not be
// reached, did not answer in time, or failed an Upgrade. Nothing has been
// written to w yet, unless the connection was hijacked.
func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	attrs := make([]slog.Attr, 0, 4)
	backend := ""
	if rt, ok := r.Context().Value(routeKey{}).(*routed); ok {
		backend = redact.URL(rt.backend.String())
		attrs = append(attrs, slog.String("name", rt.name), slog.String("backend", backend))
	}
	attrs = append(attrs, slog.String("remote_ip", remoteIP(r)), slog.Any("err", err))
	ne, ok := errors.AsType[net.Error](err)
	timeout := ok && ne.Timeout()
	rt, _ := r.Context().Value(routeKey{}).(*routed)
	switch {
	case errors.Is(context.Cause(r.Context()), ErrServerStopping):
		// Cut by the Server's Shutdown: nothing wrong with the backend,
		// and the client may try again (another process, after an
		// upgrade or a restart, will answer).
		h.logger().LogAttrs(r.Context(), slog.LevelDebug, "request cut by the proxy stopping", attrs...)
		h.Traffic.fail(FailureStopping)
		w.Header().Set("Retry-After", "5")
		writeErrorPage(w, http.StatusServiceUnavailable, "The site's proxy is restarting. Please try again in a moment.")
		return
	case r.Context().Err() != nil:
		// The client went away or the server is shutting down: nothing
		// wrong with the backend, and nobody to show a page to.
		h.logger().LogAttrs(r.Context(), slog.LevelDebug, "request ended before the backend answered", attrs...)
	case rt != nil && rt.body != nil && rt.body.failed.Load():
		// The client's body is at fault (a bad chunk size): a 400, as
		// nginx answers, and nothing about the backend, which anyone
		// could otherwise have logged as unreachable at will (a trial).
		h.logger().LogAttrs(r.Context(), slog.LevelDebug, "request body unreadable", attrs...)
		writeErrorPage(w, http.StatusBadRequest, "The request's body could not be read.")
		return
	default:
		level := slog.LevelDebug
		if h.warnFor(backend) {
			level = slog.LevelWarn
		}
		msg, kind := "backend unreachable", FailureUnreachable
		if timeout { // reached, but slow: "unreachable" sent a trial looking for a network fault
			msg, kind = "backend did not answer in time", FailureTimeout
		}
		h.Traffic.fail(kind)
		h.logger().LogAttrs(r.Context(), level, msg, attrs...)
	}
	if timeout {
		writeErrorPage(w, http.StatusGatewayTimeout, "The site's backend did not answer in time. Please try again in a moment.")
		return
	}
	writeErrorPage(w, http.StatusBadGateway, badGatewayText)
}

// badGatewayText is the 502 page's sentence.
const badGatewayText = "The site's backend is unreachable. Please try again in a moment."

// warnFor reports whether a failure of backend is logged at Warn: the
// first in a minute for that backend.
func (h *Handler) warnFor(backend string) bool {
	g, ok := h.warned.Load(backend)
	if !ok {
		if h.nWarned.Add(1) > maxWarned {
			h.warned.Clear()
			h.nWarned.Store(1)
		}
		g, _ = h.warned.LoadOrStore(backend, new(every.Gate))
	}
	return g.(*every.Gate).Allow(time.Minute)
}

// writeErrorPage answers status with a page saying text: self-contained
// (no images, styles or scripts from elsewhere), and saying nothing about
// the backend beyond that it is unreachable or slow (502, 504).
func writeErrorPage(w http.ResponseWriter, status int, text string) {
	title := strconv.Itoa(status) + " " + http.StatusText(status)
	page := `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>` + title + `</title></head>
<body style="font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em">
<h1>` + title + `</h1>
<p>` + text + `</p>
</body>
</html>
`
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Length", strconv.Itoa(len(page)))
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An error here means the client is gone; there is nobody to tell.
	_, _ = io.WriteString(w, page)
}

// remoteIP returns the client's IP address, or RemoteAddr as it is when it
// has no port.
func remoteIP(r *http.Request) string {
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return ip
	}
	return r.RemoteAddr
}

// bufferPool recycles the ReverseProxy's copy buffers, so a busy proxy
// does not allocate 32 KiB per request. One per Handler: no global state.
type bufferPool struct {
	pool sync.Pool // of *[]byte, proxyBufferSize long
}

func (p *bufferPool) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, proxyBufferSize)
}

func (p *bufferPool) Put(b []byte) {
	if cap(b) != proxyBufferSize {
		return
	}
	b = b[:proxyBufferSize]
	p.pool.Put(&b)
}
