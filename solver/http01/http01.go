// Package http01 answers the ACME http-01 challenge (RFC 8555 §8.3): the CA
// fetches http://NAME/.well-known/acme-challenge/TOKEN on port 80 and
// expects the key authorization.
//
// A Solver is both an http.Handler, to mount inside a server that already
// owns port 80 (Handler wraps a fallback), and a standalone listener
// (Listen), for CLIs that own nothing yet. It records when the CA has
// fetched a token (solver.Answerer), so the issuer polls the CA at once
// instead of sleeping.
//
// Webroot answers through a web server that keeps port 80 instead: it
// writes each token as a file under the server's document root, as
// certbot's webroot mode does.
//
// It does not redirect to HTTPS or serve anything but challenge paths:
// that is the caller's fallback handler's job.
package http01

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// PathPrefix is the URL path under which the CA fetches tokens.
const PathPrefix = "/.well-known/acme-challenge/"

// maxTokenLen bounds the token accepted from a request path; ACME tokens are
// 43 base64url characters (at least 128 bits of entropy).
const maxTokenLen = 256

// Solver holds the key authorizations of the http-01 challenges in
// progress. The zero value is ready to use; a Solver must not be copied
// after first use.
type Solver struct {
	// Logger receives debug lines for served tokens. Nil means
	// slog.Default().
	Logger *slog.Logger

	mu     sync.RWMutex      // guards tokens
	tokens map[string]*token // token → challenge answer
}

type token struct {
	keyAuth  string
	answered chan struct{}
	once     sync.Once
}

// Present makes chal's token answerable.
func (s *Solver) Present(_ context.Context, chal acme.Challenge) error {
	if chal.Token == "" || chal.KeyAuthorization == "" {
		return errors.New("http-01: challenge has no token or key authorization")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens == nil {
		s.tokens = make(map[string]*token)
	}
	s.tokens[chal.Token] = &token{keyAuth: chal.KeyAuthorization, answered: make(chan struct{})}
	return nil
}

// CleanUp forgets chal's token.
func (s *Solver) CleanUp(_ context.Context, chal acme.Challenge) error {
	s.mu.Lock()
	delete(s.tokens, chal.Token)
	s.mu.Unlock()
	return nil
}

// Answered implements solver.Answerer: the channel closes once the CA has
// fetched chal's token. For a token that is not presented it never closes.
func (s *Solver) Answered(chal acme.Challenge) <-chan struct{} {
	s.mu.RLock()
	t := s.tokens[chal.Token]
	s.mu.RUnlock()
	if t == nil {
		return nil
	}
	return t.answered
}

// KeyAuthorization returns the answer for a token, and whether the token is
// presented.
func (s *Solver) KeyAuthorization(tok string) (string, bool) {
	s.mu.RLock()
	t := s.tokens[tok]
	s.mu.RUnlock()
	if t == nil {
		return "", false
	}
	return t.keyAuth, true
}

// ServeHTTP answers GET and HEAD requests for presented tokens and 404s
// everything else.
func (s *Solver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.serve(w, r) {
		http.NotFound(w, r)
	}
}

// Handler returns a handler that answers challenge requests and passes every
// other request to fallback (404 when fallback is nil). Requests under the
// challenge path for unknown tokens are 404, never passed on, so a backend
// cannot be probed through it.
func (s *Solver) Handler(fallback http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, PathPrefix) {
			s.ServeHTTP(w, r)
			return
		}
		if fallback == nil {
			http.NotFound(w, r)
			return
		}
		fallback.ServeHTTP(w, r)
	})
}

// serve writes the key authorization for r's token and reports whether it
// did.
func (s *Solver) serve(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	tok, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	if !ok || tok == "" || len(tok) > maxTokenLen || strings.Contains(tok, "/") {
		return false
	}
	s.mu.RLock()
	t := s.tokens[tok]
	s.mu.RUnlock()
	if t == nil {
		return false
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(t.keyAuth))
	t.once.Do(func() { close(t.answered) })
	s.logger().Debug("http-01 challenge answered", slog.String("name", r.Host), slog.String("remote_ip", r.RemoteAddr))
	return true
}

func (s *Solver) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Server is a standalone http-01 listener started by Listen.
type Server struct {
	ln       net.Listener
	srv      *http.Server
	err      chan error
	once     sync.Once
	closeErr error
}

// Listen starts an HTTP server on addr (e.g. ":80") that answers only
// challenge requests. Close stops it. A busy port is reported as an error
// that names the address.
func (s *Solver) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http-01: listening on %s: %w", addr, err)
	}
	return s.Serve(ln), nil
}

// Serve answers challenge requests on ln until the returned Server is
// closed.
func (s *Solver) Serve(ln net.Listener) *Server {
	srv := &http.Server{
		Handler:           s.Handler(nil),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.logger().Handler(), slog.LevelDebug),
	}
	hs := &Server{ln: ln, srv: srv, err: make(chan error, 1)}
	go func() { hs.err <- srv.Serve(ln) }()
	return hs
}

// Addr is the address the server listens on.
func (hs *Server) Addr() net.Addr { return hs.ln.Addr() }

// Close stops the server and waits for its goroutine to end. It is safe to
// call more than once.
func (hs *Server) Close() error {
	hs.once.Do(func() {
		err := hs.srv.Close()
		if serr := <-hs.err; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		hs.closeErr = err
	})
	return hs.closeErr
}
