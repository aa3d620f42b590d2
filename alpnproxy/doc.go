// Package alpnproxy lets a host answer ACME tls-alpn-01 challenges on port
// 443 without stopping the web server that owns that port (the idea of
// letsdebug/acme-alpn-proxy).
//
// A [Server] accepts TCP connections, reads the first TLS record of each
// (bounded in size and time), and looks in the ClientHello for the ALPN
// protocol "acme-tls/1" (RFC 8737). Connections that offer it go to the ALPN
// backend, where an ACME client answers the challenge; every other connection
// goes to the fallback, the real web server. In both cases the bytes already
// read are replayed first and the two connections are then spliced, so
// neither backend can tell a proxy was there, except by the client's address,
// which an optional PROXY protocol v2 header restores for the fallback.
//
// The proxy is transparent by design: a first packet that is not a complete
// ClientHello (not TLS, truncated, larger than one TLS record may be, or not
// sent at all before the read deadline) is not an error but simply "not an
// ACME validation": the connection goes to the fallback with whatever was
// read, as if the proxy were not there. Only the ALPN backend is reached
// exclusively through a well-formed ClientHello.
//
// Nothing holds the proxy without limit: the first record is awaited for
// ReadTimeout, at most MaxConns connections are handled at once (more are
// closed at once), and a spliced connection idle for IdleTimeout is closed.
//
// A [Runner] runs a Server as a daemon around a certificate issue, as
// `certkeeper alpn-proxy start` does: it installs the redirect rules of
// package alpnproxy/iptables while it serves, writes a [Pidfile] once it is
// ready, and drains on the end of its context; [Pidfile.Stop] ends it from
// another process (`certkeeper alpn-proxy stop`), so a Go program can do
// both without the command.
//
// The package does not terminate TLS, look at certificates, or install
// firewall rules itself (package alpnproxy/iptables does, on Linux, and
// only a Runner given Rules uses it).
package alpnproxy
