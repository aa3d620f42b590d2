// Package tlsalpn01 answers the ACME tls-alpn-01 challenge (RFC 8737): the
// CA opens a TLS connection to port 443 offering only the "acme-tls/1"
// protocol and expects a self-signed certificate for the name that carries
// the key authorization's digest.
//
// A Solver is a table of challenge certificates keyed by the SNI the CA
// sends. Any server that owns :443 serves them from its own
// GetCertificate (see GetCertificate and IsChallenge); CLIs that own
// nothing use Listen. It records when the CA has fetched a certificate
// (solver.Answerer), so the issuer polls the CA at once.
package tlsalpn01

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
)

// Protocol is the ALPN protocol name of the challenge ("acme-tls/1").
const Protocol = acmez.ACMETLS1Protocol

// Solver holds the challenge certificates in progress. The zero value is
// ready to use; a Solver must not be copied after first use.
type Solver struct {
	// Logger receives debug lines for answered challenges. Nil means
	// slog.Default().
	Logger *slog.Logger

	mu    sync.RWMutex      // guards certs
	certs map[string]*entry // SNI → challenge certificate
}

type entry struct {
	cert     *tls.Certificate
	token    string
	answered chan struct{}
	once     sync.Once
}

// IsChallenge reports whether hello is a tls-alpn-01 validation handshake:
// it offers acme-tls/1 (RFC 8737 §3: the CA offers only that protocol).
func IsChallenge(hello *tls.ClientHelloInfo) bool {
	return slices.Contains(hello.SupportedProtos, Protocol)
}

// SNI returns the server name the CA sends when validating identifier: the
// name itself for DNS identifiers, the reverse-DNS name for IP identifiers
// (RFC 8738 §6), lower case without a trailing dot.
func SNI(identifier acme.Identifier) string {
	if identifier.Type == "ip" {
		if ip, err := netip.ParseAddr(identifier.Value); err == nil {
			return reverseName(ip)
		}
	}
	return strings.ToLower(strings.TrimSuffix(identifier.Value, "."))
}

// Present creates the challenge certificate for chal and serves it from now
// on.
func (s *Solver) Present(_ context.Context, chal acme.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(chal)
	if err != nil {
		return fmt.Errorf("tls-alpn-01: making challenge certificate for %s: %w", chal.Identifier.Value, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.certs == nil {
		s.certs = make(map[string]*entry)
	}
	s.certs[SNI(chal.Identifier)] = &entry{cert: cert, token: chal.Token, answered: make(chan struct{})}
	return nil
}

// CleanUp stops serving chal's certificate.
func (s *Solver) CleanUp(_ context.Context, chal acme.Challenge) error {
	name := SNI(chal.Identifier)
	s.mu.Lock()
	if e := s.certs[name]; e != nil && e.token == chal.Token {
		delete(s.certs, name)
	}
	s.mu.Unlock()
	return nil
}

// Answered implements solver.Answerer: the channel closes once a validator
// has fetched chal's certificate.
func (s *Solver) Answered(chal acme.Challenge) <-chan struct{} {
	s.mu.RLock()
	e := s.certs[SNI(chal.Identifier)]
	s.mu.RUnlock()
	if e == nil || e.token != chal.Token {
		return nil
	}
	return e.answered
}

// ErrNoChallenge is returned by GetCertificate for an acme-tls/1 handshake
// for a name with no challenge in progress.
var ErrNoChallenge = errors.New("no tls-alpn-01 challenge in progress")

// GetCertificate returns the challenge certificate for hello's SNI. Call it
// only for hellos where IsChallenge is true; a server's own GetCertificate
// does that first thing.
func (s *Solver) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	s.mu.RLock()
	e := s.certs[name]
	s.mu.RUnlock()
	if e == nil {
		return nil, fmt.Errorf("certkeeper: %w for %q", ErrNoChallenge, name)
	}
	e.once.Do(func() { close(e.answered) })
	s.logger().Debug("tls-alpn-01 challenge answered", slog.String("name", name))
	return e.cert, nil
}

func (s *Solver) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// TLSConfig returns a server configuration that answers only tls-alpn-01
// handshakes, for a standalone challenge listener.
func (s *Solver) TLSConfig() *tls.Config {
	return &tls.Config{
		NextProtos:     []string{Protocol},
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.GetCertificate,
	}
}

// ErrNotChallenge is returned by the GetCertificate of ChallengeOnly's
// configuration for a handshake that is not a tls-alpn-01 validation:
// crypto/tls answers it with a handshake failure.
var ErrNotChallenge = errors.New("certkeeper: this listener answers only tls-alpn-01 validation handshakes (ALPN acme-tls/1)")

// ChallengeOnly returns a server configuration that completes only
// tls-alpn-01 validation handshakes (RFC 8737 §3: the CA offers
// acme-tls/1), with the certificate get returns (a certkeeper.Manager's
// GetCertificate, which answers its own challenges), and fails every other
// handshake with ErrNotChallenge: a port open to the world (443) then
// never reaches what else the server serves, such as an API handing out
// private keys. A completed handshake carries no HTTP: net/http closes a
// connection whose negotiated protocol it has no TLSNextProto handler for.
func ChallengeOnly(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		NextProtos: []string{Protocol},
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if !IsChallenge(hello) {
				return nil, ErrNotChallenge
			}
			return get(hello)
		},
	}
}

// Server is a standalone tls-alpn-01 listener started by Listen.
type Server struct {
	ln   net.Listener
	wg   sync.WaitGroup
	once sync.Once
}

// Listen starts a TLS listener on addr (e.g. ":443") that completes
// tls-alpn-01 handshakes and closes each connection after it. A busy port
// is reported as an error that names the address.
func (s *Solver) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tls-alpn-01: listening on %s: %w", addr, err)
	}
	return s.Serve(ln), nil
}

// Serve answers tls-alpn-01 handshakes on ln until the Server is closed.
func (s *Solver) Serve(ln net.Listener) *Server {
	srv := &Server{ln: ln}
	cfg := s.TLSConfig()
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				s.logger().Warn("tls-alpn-01 listener stopped", slog.Any("err", err))
				return
			}
			srv.wg.Add(1)
			go func() {
				defer srv.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				_ = tc.Handshake()
				_ = tc.Close()
			}()
		}
	}()
	return srv
}

// Addr is the address the server listens on.
func (srv *Server) Addr() net.Addr { return srv.ln.Addr() }

// Close stops the listener and waits for open connections to finish.
func (srv *Server) Close() error {
	var err error
	srv.once.Do(func() {
		err = srv.ln.Close()
		srv.wg.Wait()
	})
	return err
}

// reverseName is the in-addr.arpa / ip6.arpa name of ip, without the final
// dot.
func reverseName(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is4() {
		b := ip.As4()
		return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
	}
	b := ip.As16()
	const hexDigits = "0123456789abcdef"
	var sb strings.Builder
	for i := len(b) - 1; i >= 0; i-- {
		sb.WriteByte(hexDigits[b[i]&0xf])
		sb.WriteByte('.')
		sb.WriteByte(hexDigits[b[i]>>4])
		sb.WriteByte('.')
	}
	sb.WriteString("ip6.arpa")
	return sb.String()
}
