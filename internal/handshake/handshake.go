// Package handshake keeps the servers' timeouts from cutting a TLS
// handshake that waits for its certificate to be obtained.
//
// net/http bounds a whole TLS handshake by the smallest of a server's
// ReadHeaderTimeout, ReadTimeout and WriteTimeout, set when the connection
// is accepted. A first handshake for a new name waits in GetCertificate
// while its certificate is obtained: a CA's validation (seconds, more with
// DNS), or another node's issue lock (up to a lease when that node died).
// Without a fresh deadline once GetCertificate returns, the certificate
// arrives after the connection was given up on, and the client that asked
// first fails, with only "i/o timeout" in the server's log, although the
// issuance succeeded.
package handshake

import (
	"crypto/tls"
	"net/http"
	"time"
)

// Timeout is the deadline net/http gives a whole TLS handshake on srv:
// the smallest of its positive ReadHeaderTimeout, ReadTimeout and
// WriteTimeout; zero for none.
func Timeout(srv *http.Server) time.Duration {
	var d time.Duration
	for _, t := range []time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout} {
		if t > 0 && (d == 0 || t < d) {
			d = t
		}
	}
	return d
}

// Extend makes tc's GetCertificate give the rest of a handshake a fresh
// deadline d once it has returned, if it took a quarter of d or more (a
// certificate in memory, nearly every handshake, leaves the deadline as
// it was). The deadline still bounds a slow client: GetCertificate runs
// only once the whole ClientHello has arrived. Only for a server that
// clears the connection's deadline after the handshake, as net/http does
// when d (Timeout) is not zero; zero d leaves tc as it is.
func Extend(tc *tls.Config, d time.Duration) {
	get := tc.GetCertificate
	if get == nil || d <= 0 {
		return
	}
	tc.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		start := time.Now()
		c, err := get(hello)
		if hello.Conn != nil && time.Since(start) >= d/4 {
			_ = hello.Conn.SetDeadline(time.Now().Add(d))
		}
		return c, err
	}
}
