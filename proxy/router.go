package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/redact"
)

// DefaultLocalPort is the port of the same-IP rule when
// RouterConfig.LocalPort is zero: the plain-HTTP port the sites behind the
// proxy already listen on.
const DefaultLocalPort = 80

// Route sends the requests for the names matching Pattern to Backend.
type Route struct {
	// Pattern is a host name ("b.test", an IP address literal such as
	// "192.0.2.1"), or "*." followed by a host name ("*.b.test"), which
	// matches every name under b.test at any depth ("x.b.test",
	// "y.x.b.test") but not b.test itself: list both to route both.
	// Patterns are normalised as certificate names are (lower case,
	// punycode, no trailing dot), so "B.Test." and "b.test" are one
	// pattern.
	Pattern string
	// Backend is the URL the matching requests are forwarded to:
	// "http://127.0.0.1:8081", or "https://..." for a backend that speaks
	// TLS. A path ("http://127.0.0.1:8081/app") is prepended to every
	// request's path, and a query is merged into every request's query.
	Backend string
}

// ParseRoute parses a route in the NAME=URL form of the --route flag, such
// as "b.test=http://127.0.0.1:8081" or "*.b.test=http://127.0.0.1:8082",
// and checks it as NewRouter would.
func ParseRoute(s string) (Route, error) {
	pattern, backend, ok := strings.Cut(s, "=")
	if !ok {
		return Route{}, fmt.Errorf("route %q: want NAME=URL, as in b.test=http://127.0.0.1:8081", redact.URL(s))
	}
	r := Route{Pattern: strings.TrimSpace(pattern), Backend: strings.TrimSpace(backend)}
	if _, _, err := r.parse(); err != nil {
		return Route{}, err
	}
	return r, nil
}

// parse returns r's normalised pattern and its backend URL.
func (r Route) parse() (string, *url.URL, error) {
	pattern, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(r.Pattern)
	if err != nil {
		return "", nil, fmt.Errorf("route %q: %w", r.Pattern, hostname.WithHostHint(r.Pattern, err))
	}
	backend, err := parseBackend(r.Backend)
	if err != nil {
		return "", nil, fmt.Errorf("route %q: %w", r.Pattern, err)
	}
	return pattern, backend, nil
}

// RouterConfig is what NewRouter builds a Router from.
type RouterConfig struct {
	// Routes are the per-name backends. An exact pattern beats every
	// wildcard; among wildcards the longest one wins ("*.x.b.test" beats
	// "*.b.test" for y.x.b.test). Two routes with the same pattern are an
	// error.
	Routes []Route
	// Default is the backend URL for requests that no route matches, in
	// the form of Route.Backend. Empty: the same-IP rule, port LocalPort
	// on the local address the client connected to.
	Default string
	// LocalPort is the port of the same-IP rule, 1 to 65535. Zero means
	// DefaultLocalPort (80). It is not used when Default is set.
	LocalPort int
	// DefaultName is the name whose certificate a client that sends no
	// server name (SNI) gets (a Manager's DefaultName): requests on such a
	// connection are routed only to that name's backend (ErrMisdirected).
	DefaultName string
}

// Router chooses the backend of each request from the request's host name.
// It is immutable, and safe for concurrent use.
//
// The zero Router, and a nil *Router, have no routes and no default: they
// send every request to port 80 on the local IP address the client
// connected to, as lets-proxy does. NewRouter builds any other Router, so
// that a mistyped route or URL is an error at startup rather than a 502 at
// the first request.
type Router struct {
	defaultName string              // RouterConfig.DefaultName
	exact       map[string]*url.URL // normalised name → backend
	wildcard    map[string]*url.URL // "b.test" for the pattern "*.b.test" → backend
	def         *url.URL            // nil: the same-IP rule
	localPort   uint16              // 0: DefaultLocalPort
}

// NewRouter checks c and returns the Router it describes. Its errors name
// the route or setting at fault: `route "b..test": invalid name "b..test":
// empty label`, `default backend "localhost:8080": scheme "localhost" is
// not http or https`.
func NewRouter(c RouterConfig) (*Router, error) {
	rt := &Router{
		exact:    make(map[string]*url.URL),
		wildcard: make(map[string]*url.URL),
	}
	given := make(map[string]string, len(c.Routes)) // normalised pattern → as given
	for _, r := range c.Routes {
		pattern, backend, err := r.parse()
		if err != nil {
			return nil, err
		}
		if first, dup := given[pattern]; dup {
			return nil, fmt.Errorf("route %q: duplicate of route %q", r.Pattern, first)
		}
		given[pattern] = r.Pattern
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			rt.wildcard[suffix] = backend
		} else {
			rt.exact[pattern] = backend
		}
	}
	if c.Default != "" {
		u, err := parseBackend(c.Default)
		if err != nil {
			return nil, fmt.Errorf("default %w", err)
		}
		rt.def = u
	}
	if c.LocalPort < 0 || c.LocalPort > 65535 {
		return nil, fmt.Errorf("local port %d: out of range 1-65535", c.LocalPort)
	}
	rt.localPort = uint16(c.LocalPort)
	rt.defaultName = c.DefaultName
	return rt, nil
}

// Backend returns the URL of the backend for r: the backend of the route
// matching r's host name (the Host header without its port, or the TLS
// server name when there is no Host), else the default backend, else
// http://LOCAL-IP:LocalPort, where LOCAL-IP is the address the request was
// received on (http.LocalAddrContextKey in r's context, which http.Server
// sets). It fails for the last rule when r's context holds no IP
// address, and with ErrMisdirected. The returned URL must not be modified.
func (rt *Router) Backend(r *http.Request) (*url.URL, error) {
	_, u, err := rt.route(r)
	return u, err
}

// route returns the host name of r (normalised if it is valid, for logs),
// and its backend.
func (rt *Router) route(r *http.Request) (string, *url.URL, error) {
	host := r.Host
	if host == "" && r.TLS != nil {
		host = r.TLS.ServerName
	}
	name, valid := hostOf(host)
	if rt != nil {
		if !valid && r.TLS != nil && (len(rt.exact) > 0 || len(rt.wildcard) > 0) {
			return name, nil, ErrMisdirected // a Host that is no name ("internal..test") names no route of this connection
		}
		if valid {
			u := rt.match(name)
			if r.TLS != nil && name != r.TLS.ServerName && (len(rt.exact) > 0 || len(rt.wildcard) > 0) && !rt.sameBackend(u, r.TLS.ServerName) {
				return name, nil, ErrMisdirected
			}
			if u != nil {
				return name, u, nil
			}
		}
		if rt.def != nil {
			return name, rt.def, nil
		}
	}
	u, err := rt.sameIP(r.Context())
	return name, u, err
}

// ErrMisdirected is the error of Router.Backend for a request over TLS
// whose Host header has another route than the server name (SNI) the
// client's connection was made for: a client that reached b.test with a
// certificate for a.test must not, by sending "Host: b.test" (or an
// absolute URL), get at b.test's backend, which may be an internal site
// the policy serves no certificate for. A Handler answers it with 421
// Misdirected Request (RFC 9110, section 15.5.20), after which browsers
// that reused a connection for another name of its certificate retry on a
// connection of that name's own. Names with the same backend (a.test and
// the default, or two names of one wildcard route) are not misdirected,
// nor is any request when the Router has no routes.
var ErrMisdirected = errors.New("misdirected request: the Host header's route is not that of the TLS server name the connection was made for")

// sameBackend reports whether u, the route of a request's Host (nil: none),
// is the route of the TLS server name sni (RouterConfig.DefaultName when
// the client sent none).
func (rt *Router) sameBackend(u *url.URL, sni string) bool {
	if sni == "" {
		sni = rt.defaultName
	}
	var v *url.URL
	if name, valid := hostOf(sni); valid {
		v = rt.match(name)
	}
	return u == v || u != nil && v != nil && u.String() == v.String()
}

// match returns the backend of the route for name, a normalised name, or
// nil. Walking the name's dots from the left tries the longest wildcard
// first.
func (rt *Router) match(name string) *url.URL {
	if u, ok := rt.exact[name]; ok {
		return u
	}
	if len(rt.wildcard) == 0 {
		return nil
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if u, ok := rt.wildcard[name[i+1:]]; ok {
			return u
		}
	}
	return nil
}

// errNoLocalAddr is the same-IP rule's error when a request carries no
// local address: it did not come through an http.Server.
var errNoLocalAddr = errors.New("same-IP rule: request has no local address (http.LocalAddrContextKey)")

// sameIP applies lets-proxy's rule: the backend is plain HTTP on the local
// IP address the connection came in on.
func (rt *Router) sameIP(ctx context.Context) (*url.URL, error) {
	port := uint16(DefaultLocalPort)
	if rt != nil && rt.localPort != 0 {
		port = rt.localPort
	}
	var ap netip.AddrPort
	switch a := ctx.Value(http.LocalAddrContextKey).(type) {
	case nil:
		return nil, errNoLocalAddr
	case *net.TCPAddr:
		ap = a.AddrPort()
	case net.Addr:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return nil, fmt.Errorf("same-IP rule: local address %s (%s) has no IP address", a, a.Network())
		}
	default:
		return nil, errNoLocalAddr
	}
	// A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; the
	// backend listens on a.b.c.d.
	ip := ap.Addr().Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return nil, fmt.Errorf("same-IP rule: local address %s is not a usable IP address", ap)
	}
	return &url.URL{Scheme: "http", Host: netip.AddrPortFrom(ip, port).String()}, nil
}

// hostOf returns host without its port, normalised, and whether it is a
// valid host name or IP address. An invalid one is returned as it was
// given (without its port), for logs.
func hostOf(host string) (string, bool) {
	// "a.test:8443" → "a.test", "[::1]:8443" → "::1".
	h := (&url.URL{Host: host}).Hostname()
	n, err := hostname.Normalizer{AllowIP: true}.Normalize(h)
	if err != nil {
		if len(h) > 256 {
			h = h[:64] + "..." // a hostile Host must not flood a log line
		}
		return h, false
	}
	return n, true
}

// BackendURL returns s, a backend as a user writes it, as the URL
// RouterConfig and Route take: HOST:PORT (127.0.0.1:8080, [::1]:8080)
// means http://HOST:PORT; anything else must be an http:// or https://
// URL. Its error says what is wrong with it.
func BackendURL(s string) (string, error) {
	if s != "" && !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		switch {
		case err == nil && host != "" && port != "":
			s = "http://" + s
		case err == nil && host == "" && port != "": // ":8080", as a listen address is written
			return "", fmt.Errorf("backend %q: no host (write a URL such as http://127.0.0.1:%s)", redact.URL(s), port)
		}
	}
	if _, err := parseBackend(s); err != nil {
		return "", err
	}
	return s, nil
}

// parseBackend parses and checks a backend URL. Its errors show the URL
// as redact.URL gives it.
func parseBackend(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("backend: empty URL")
	}
	shown := redact.URL(s)
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", shown, redact.Error(s, err))
	}
	switch {
	case u.User != nil:
		// ReverseProxy would drop it silently, and it would end up in logs.
		return nil, fmt.Errorf("backend %q: user info in a backend URL is not supported", shown)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("backend %q: scheme %q is not http or https (write a URL such as http://127.0.0.1:8080)", shown, u.Scheme)
	case u.Opaque != "" || u.Hostname() == "":
		return nil, fmt.Errorf("backend %q: no host", shown)
	case u.Fragment != "":
		return nil, fmt.Errorf("backend %q: a backend URL has no fragment", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("backend %q: port %s out of range 1-65535", shown, p)
		}
	}
	return u, nil
}
