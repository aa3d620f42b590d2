package proxy_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/proxy"
)

// request returns a request for host as received on the local address
// local ("" for none).
func request(t *testing.T, host, local string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://placeholder/x", nil) // TLS-less: see TestRouterMisdirected
	r.Host = host
	if local != "" {
		ap, err := net.ResolveTCPAddr("tcp", local)
		if err != nil {
			t.Fatal(err)
		}
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, ap))
	}
	return r
}

func TestRouterBackend(t *testing.T) {
	routes := []proxy.Route{
		{Pattern: "b.test", Backend: "http://127.0.0.1:1001"},
		{Pattern: "*.b.test", Backend: "http://127.0.0.1:1002"},
		{Pattern: "*.x.b.test", Backend: "http://127.0.0.1:1003"},
		{Pattern: "exact.x.b.test", Backend: "http://127.0.0.1:1004"},
		{Pattern: "Ünï.Test.", Backend: "https://backend.test/app"},
		{Pattern: "192.0.2.7", Backend: "http://[::1]:1005"},
	}
	withDefault := mustRouter(t, proxy.RouterConfig{Routes: routes, Default: "http://127.0.0.1:8080"})
	sameIP := mustRouter(t, proxy.RouterConfig{Routes: routes})
	port8080 := mustRouter(t, proxy.RouterConfig{Routes: routes, LocalPort: 8080})

	tests := []struct {
		name   string
		router *proxy.Router
		host   string
		local  string
		want   string
	}{
		{"exact", withDefault, "b.test", "", "http://127.0.0.1:1001"},
		{"exact with port", withDefault, "b.test:8443", "", "http://127.0.0.1:1001"},
		{"exact case and trailing dot", withDefault, "B.TEST.", "", "http://127.0.0.1:1001"},
		{"wildcard", withDefault, "y.b.test", "", "http://127.0.0.1:1002"},
		{"wildcard any depth", withDefault, "z.y.b.test", "", "http://127.0.0.1:1002"},
		{"longer wildcard wins", withDefault, "y.x.b.test", "", "http://127.0.0.1:1003"},
		{"exact beats wildcard", withDefault, "exact.x.b.test", "", "http://127.0.0.1:1004"},
		{"wildcard is not its apex", withDefault, "x.b.test", "", "http://127.0.0.1:1002"},
		{"suffix without dot is no match", withDefault, "ab.test", "", "http://127.0.0.1:8080"},
		{"IDNA", withDefault, "xn--n-nga1b.test", "", "https://backend.test/app"},
		{"IP literal", withDefault, "192.0.2.7:443", "", "http://[::1]:1005"},
		{"default", withDefault, "a.test", "", "http://127.0.0.1:8080"},
		{"invalid host goes to default", withDefault, "a..test", "", "http://127.0.0.1:8080"},
		{"empty host goes to default", withDefault, "", "", "http://127.0.0.1:8080"},
		{"same IP v4", sameIP, "a.test", "192.0.2.1:443", "http://192.0.2.1:80"},
		{"same IP v6", sameIP, "a.test", "[2001:db8::1]:443", "http://[2001:db8::1]:80"},
		{"same IP v4-mapped", sameIP, "a.test", "[::ffff:192.0.2.1]:443", "http://192.0.2.1:80"},
		{"same IP local port", port8080, "a.test", "192.0.2.1:443", "http://192.0.2.1:8080"},
		{"route beats same IP", sameIP, "b.test", "192.0.2.1:443", "http://127.0.0.1:1001"},
		{"nil router", nil, "a.test", "192.0.2.1:443", "http://192.0.2.1:80"},
		{"zero router", &proxy.Router{}, "b.test", "192.0.2.1:443", "http://192.0.2.1:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.router.Backend(request(t, tt.host, tt.local))
			if err != nil {
				t.Fatalf("Backend(Host %q) = %v", tt.host, err)
			}
			if got := u.String(); got != tt.want {
				t.Errorf("Backend(Host %q) = %s, want %s", tt.host, got, tt.want)
			}
		})
	}
}

func TestRouterTLSServerName(t *testing.T) {
	rt := mustRouter(t, proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "http://127.0.0.1:1001"}}})
	r := request(t, "", "")
	r.TLS = &tls.ConnectionState{ServerName: "b.test"}
	u, err := rt.Backend(r)
	if err != nil || u.String() != "http://127.0.0.1:1001" {
		t.Errorf("Backend(no Host, SNI b.test) = %v, %v; want http://127.0.0.1:1001", u, err)
	}
}

// TestRouterMisdirected: over TLS, a Host whose route is not that of the
// server name is ErrMisdirected, and so is a Host that is no name; without
// a server name, the connection is DefaultName's. A Router without routes
// sends every Host to its default.
func TestRouterMisdirected(t *testing.T) {
	routes := []proxy.Route{{Pattern: "b.test", Backend: "http://127.0.0.1:1001"}, {Pattern: "c.test", Backend: "http://127.0.0.1:1001"}}
	rt := mustRouter(t, proxy.RouterConfig{Routes: routes, Default: "http://127.0.0.1:8080", DefaultName: "A.test"})
	noRoutes := mustRouter(t, proxy.RouterConfig{Default: "http://127.0.0.1:8080"})
	for _, tt := range []struct {
		router    *proxy.Router
		sni, host string
		misdirect bool
	}{
		{rt, "a.test", "b.test", true},
		{rt, "", "b.test", true},
		{rt, "b.test", "a.test", true},
		{rt, "b.test", "c.test", false}, // one backend, two routes
		{rt, "", "a.test", false},
		{rt, "", "d.test", false},
		{rt, "b.test", "B.test:443", false},
		{rt, "b.test", "", false},
		{rt, "b.test", "not a name", true},     // no name names no route of this connection (a security trial reached the default backend with "internal..test")
		{rt, "b.test", "internal..test", true}, // nor its Host forwarded as it is
		{noRoutes, "a.test", "b.test", false},
	} {
		r := request(t, tt.host, "")
		r.TLS = &tls.ConnectionState{ServerName: tt.sni}
		u, err := tt.router.Backend(r)
		if got := errors.Is(err, proxy.ErrMisdirected); got != tt.misdirect || !got && err != nil {
			t.Errorf("SNI %q, Host %q: %v, %v; misdirected: %v", tt.sni, tt.host, u, err, tt.misdirect)
		}
		r.TLS = nil // plain HTTP: no server name to hold the Host to
		if _, err := tt.router.Backend(r); err != nil {
			t.Errorf("plain HTTP, Host %q: %v", tt.host, err)
		}
	}
}

func TestRouterSameIPNeedsLocalAddr(t *testing.T) {
	var rt proxy.Router
	if u, err := rt.Backend(request(t, "a.test", "")); err == nil {
		t.Errorf("Backend without a local address = %v, want an error", u)
	}
	r := request(t, "a.test", "")
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}))
	if u, err := rt.Backend(r); err == nil {
		t.Errorf("Backend on a unix socket = %v, want an error", u)
	}
}

func TestNewRouterErrors(t *testing.T) {
	ok := "http://127.0.0.1:8080"
	tests := []struct {
		name string
		c    proxy.RouterConfig
		want string
	}{
		{"invalid pattern", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b..test", Backend: ok}}},
			`route "b..test": invalid name "b..test": empty label`},
		{"wildcard in the middle", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "a.*.test", Backend: ok}}},
			`route "a.*.test": invalid name`},
		{"empty pattern", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "", Backend: ok}}},
			`route "": invalid name "": empty name`},
		{"duplicate", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: ok}, {Pattern: "B.test.", Backend: ok}}},
			`route "B.test.": duplicate of route "b.test"`},
		{"empty backend", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test"}}},
			`route "b.test": backend: empty URL`},
		{"no scheme", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "localhost:8080"}}},
			`route "b.test": backend "localhost:8080": scheme "localhost" is not http or https`},
		{"ftp", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "ftp://127.0.0.1"}}},
			`scheme "ftp" is not http or https`},
		{"no host", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "http:///x"}}},
			`route "b.test": backend "http:///x": no host`},
		{"user info", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "http://u:p@127.0.0.1"}}},
			`user info in a backend URL is not supported`},
		{"fragment", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "http://127.0.0.1/#x"}}},
			`has no fragment`},
		{"port", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "http://127.0.0.1:70000"}}},
			`port 70000 out of range 1-65535`},
		{"unparsable", proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b.test", Backend: "http://[::1"}}},
			`route "b.test": backend "http://[::1": missing ']' in host`},
		{"default", proxy.RouterConfig{Default: "127.0.0.1:8080"},
			`default backend "127.0.0.1:8080": first path segment in URL cannot contain colon`},
		{"local port", proxy.RouterConfig{LocalPort: 65536},
			`local port 65536: out of range 1-65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, err := proxy.NewRouter(tt.c)
			if err == nil {
				t.Fatalf("NewRouter(%+v) = %v, nil; want error %q", tt.c, rt, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewRouter(%+v) = %q, want it to contain %q", tt.c, err, tt.want)
			}
		})
	}
	_, err := proxy.NewRouter(proxy.RouterConfig{Routes: []proxy.Route{{Pattern: "b..test", Backend: ok}}})
	if !errors.Is(err, hostname.ErrInvalidName) {
		t.Errorf("NewRouter(invalid pattern) = %v, want errors.Is hostname.ErrInvalidName", err)
	}
}

func TestParseRoute(t *testing.T) {
	tests := []struct {
		in      string
		want    proxy.Route
		wantErr string
	}{
		{"b.test=http://127.0.0.1:8081", proxy.Route{Pattern: "b.test", Backend: "http://127.0.0.1:8081"}, ""},
		{" *.b.test = http://127.0.0.1:8082/app?x=1 ", proxy.Route{Pattern: "*.b.test", Backend: "http://127.0.0.1:8082/app?x=1"}, ""},
		{"b.test", proxy.Route{}, `route "b.test": want NAME=URL`},
		{"b.test=", proxy.Route{}, `route "b.test": backend: empty URL`},
		{"=http://127.0.0.1", proxy.Route{}, `route "": invalid name`},
		{"https://b.test=http://127.0.0.1", proxy.Route{}, `route "https://b.test": invalid name "https://b.test": give the host name alone: b.test`},
		{"b.test:443=http://127.0.0.1", proxy.Route{}, `route "b.test:443": invalid name "b.test:443": give the host name alone: b.test`},
	}
	for _, tt := range tests {
		got, err := proxy.ParseRoute(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("ParseRoute(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseRoute(%q) = %+v, %v; want error %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestBackendURL(t *testing.T) {
	for _, tt := range []struct{ in, want, wantErr string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"https://b.test/app", "https://b.test/app", ""},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", ""},
		{"[::1]:8080", "http://[::1]:8080", ""},
		{"localhost:8080", "http://localhost:8080", ""},
		{"", "", "empty URL"},
		{":8080", "", "no host (write a URL such as http://127.0.0.1:8080)"},
		{"ftp://b.test", "", `scheme "ftp" is not http or https`},
		{"127.0.0.1:99999", "", "out of range"},
		{"http://user:pw@b.test", "", "user info"},
	} {
		got, err := proxy.BackendURL(tt.in)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("BackendURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("BackendURL(%q) = %q, %v; want error %q", tt.in, got, err, tt.wantErr)
		}
	}
}
