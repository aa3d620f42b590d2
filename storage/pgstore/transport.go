package pgstore

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// TransportRisk returns a sentence if the Store talks to a server beyond
// loopback without TLS that verifies the server's certificate (sslmode
// other than verify-ca or verify-full: libpq's default, prefer, falls back
// to plain text and accepts any certificate), so that what it stores —
// private keys, unless sealed by storage/encrypted — could be read or
// altered on the network; "" otherwise.
func (s *Store) TransportRisk() string { return s.transportRisk }

// transportRisk computes TransportRisk from pgx's parsed configuration,
// which reflects the URL's sslmode and PGSSLMODE alike.
func transportRisk(cc *pgconn.Config, where string) string {
	safe := verified(cc.TLSConfig) || isLocal(cc.Host)
	for _, fb := range cc.Fallbacks {
		// sslmode=prefer is a TLS attempt with a plain-text fallback.
		safe = safe && (verified(fb.TLSConfig) || isLocal(fb.Host))
	}
	if safe {
		return ""
	}
	return fmt.Sprintf("%s is reached without verified TLS: certificates and keys cross the network open to reading or tampering; add sslmode=verify-full (with sslrootcert) to the URL", where)
}

// verified reports whether c is TLS that verifies the server: pgx sets
// InsecureSkipVerify for sslmode require and verify-ca, the latter with a
// VerifyPeerCertificate of its own.
func verified(c *tls.Config) bool {
	return c != nil && (!c.InsecureSkipVerify || c.VerifyPeerCertificate != nil)
}

// isLocal reports whether host is a Unix socket directory or a loopback
// address or name.
func isLocal(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
