package certkeeper

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/handshake"
	"github.com/certkeeper/certkeeper/internal/nobody"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
)

// HTTPHandler returns a handler for port 80 that answers http-01
// challenges and passes every other request to fallback. A nil fallback
// redirects to HTTPS (RedirectHTTP).
func (m *Manager) HTTPHandler(fallback http.Handler) http.Handler {
	_ = m.init()
	if fallback == nil {
		fallback = RedirectHTTP
	}
	return m.challengeHandler(fallback)
}

// RedirectHTTP is a handler that redirects every request to the same URL
// over HTTPS on port 443 (308 for requests with a body, 301 otherwise).
// HTTPHandler(nil) uses it; RedirectHTTPSPort redirects to another port.
var RedirectHTTP http.Handler = http.HandlerFunc(redirectHTTP)

// RedirectHTTPSPort is RedirectHTTP to HTTPS on port (a number, as
// "8443"), for an HTTPS server that does not listen on 443:
// m.HTTPHandler(certkeeper.RedirectHTTPSPort("8443")). Port 443, or an
// empty one, is RedirectHTTP.
func RedirectHTTPSPort(port string) http.Handler {
	if port == "" || port == "443" {
		return RedirectHTTP
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { redirectTo(w, r, ":"+port) })
}

// RedirectHTTPSListener is RedirectHTTP for an HTTPS listener on port
// that clients may reach on 443 through a forward: a request whose Host
// names a port (its client reached this server directly, on a port other
// than 80) is sent to port; one without (port 80, or a forward from it),
// to 443. certkeeper proxy's --http-addr uses it: behind forwards of 80
// and 443 its clients go to 443, and on a host's :8080 to its :8443.
func RedirectHTTPSListener(port string) http.Handler {
	direct := RedirectHTTPSPort(port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := net.SplitHostPort(r.Host); err == nil {
			direct.ServeHTTP(w, r)
			return
		}
		redirectHTTP(w, r)
	})
}

func redirectHTTP(w http.ResponseWriter, r *http.Request) { redirectTo(w, r, "") }

// redirectTo redirects r to its URL over HTTPS, on port (":8443"; empty
// for 443). A body is not read (the client sends it again over HTTPS),
// and its connection is closed after the answer.
func redirectTo(w http.ResponseWriter, r *http.Request, port string) {
	if nobody.Has(r) {
		nobody.Drop(w)
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1] // an IPv6 literal without a port
	}
	bracketed := strings.HasPrefix(r.Host, "[")
	if host == "" || strings.ContainsAny(host, "/\\@ []") {
		http.Error(w, "certkeeper: use HTTPS", http.StatusBadRequest)
		return
	}
	if bracketed || strings.Contains(host, ":") { // an IPv6 literal, bracketed once in the URL
		if ip, err := netip.ParseAddr(host); err != nil || !ip.Is6() {
			http.Error(w, "certkeeper: use HTTPS", http.StatusBadRequest)
			return
		}
		host = "[" + host + "]"
	}
	code := http.StatusMovedPermanently
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusPermanentRedirect
	}
	http.Redirect(w, r, "https://"+host+port+r.URL.RequestURI(), code)
}

// ServeHTTPS serves http.DefaultServeMux over HTTPS on :443 with this
// Manager's certificates. It fails at once if no names are allowed.
func (m *Manager) ServeHTTPS() error {
	if err := m.check(); err != nil {
		return err
	}
	srv := m.newServer(":443", http.DefaultServeMux)
	m.ConfigureServer(srv)
	return srv.ListenAndServeTLS("", "")
}

// ConfigureServer makes srv serve this Manager's certificates: it sets
// srv.TLSConfig to TLSConfig(), or, if srv has one, to a copy of it with
// this Manager's GetCertificate and tls-alpn-01's protocol added. Call it
// once srv's timeouts are set, rather than setting TLSConfig yourself:
// net/http bounds a whole TLS handshake by the smallest of srv's
// ReadHeaderTimeout, ReadTimeout and WriteTimeout, and a first handshake
// for a new name waits while its certificate is obtained (seconds, up to
// HandshakeWait), so with TLSConfig alone a 10-second ReadHeaderTimeout
// fails the first client of a certificate that takes 12 (the log says
// only "i/o timeout"), although it is obtained. Here a handshake that
// waited gets a fresh deadline of that length once its certificate is
// there. Serve and ServeHTTPS use it.
func (m *Manager) ConfigureServer(srv *http.Server) {
	tc := m.TLSConfig()
	if srv.TLSConfig != nil {
		own := srv.TLSConfig.Clone()
		own.GetCertificate = tc.GetCertificate
		switch {
		case len(own.NextProtos) == 0:
			own.NextProtos = tc.NextProtos
		case !slices.Contains(own.NextProtos, tlsalpn01.Protocol):
			own.NextProtos = append(slices.Clip(own.NextProtos), tlsalpn01.Protocol)
		}
		tc = own
	}
	handshake.Extend(tc, handshake.Timeout(srv))
	srv.TLSConfig = tc
}

// Serve serves http.DefaultServeMux over HTTPS on :443, and on :80 answers
// http-01 challenges and redirects everything else to HTTPS, as
// rsc.io/letsencrypt's Serve did. It fails at once if no names are
// allowed, or when either server stops.
func (m *Manager) Serve() error {
	if err := m.check(); err != nil {
		return err
	}
	errc := make(chan error, 2)
	plain := m.newServer(":80", m.HTTPHandler(nil))
	go func() { errc <- plain.ListenAndServe() }()
	go func() { errc <- m.ServeHTTPS() }()
	err := <-errc
	_ = plain.Close()
	return err
}

// Start starts the Manager's background work now rather than at its
// first use: the renewal schedule is rebuilt from storage, so that
// certificates due (or revoked: RevokeStored) are renewed before any
// handshake asks for them. It returns the configuration error a first use
// would. Serve and ServeHTTPS start the Manager; a program serving through
// TLSConfig or GetCertificate calls Start once its fields are set. After
// Close it returns ErrClosed: a closed Manager does not start again.
func (m *Manager) Start() error {
	if err := m.init(); err != nil {
		return err
	}
	if m.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// check refuses to serve with a Manager that could never serve a name.
func (m *Manager) check() error {
	if err := m.init(); err != nil {
		return err
	}
	if m.Policy == nil && m.cache.len() == 0 {
		return ErrNoPolicy
	}
	return nil
}

func (m *Manager) newServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(m.logger().Handler(), slog.LevelDebug),
	}
}
