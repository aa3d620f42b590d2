// Package proxy is the reverse-proxy front-end of certkeeper: it terminates
// TLS for every site behind it and forwards the requests, as plain HTTP, to
// their backends. Started in front of a host's web servers, it gives every
// site on the host HTTPS without touching the sites (what rekby/lets-proxy
// does, and what `certkeeper proxy` runs).
//
// Three pieces, each usable alone:
//
//   - [Router] chooses a backend for a request: a per-name route ("b.test",
//     or "*.b.test" for the names under it), else a default backend, else
//     lets-proxy's rule: port 80 on the same local IP address the client
//     connected to, so that a proxy on :443 fronts a web server that keeps
//     its :80.
//   - [Handler] is an http.Handler built on httputil.ReverseProxy: it keeps
//     the client's Host header, sets X-Forwarded-For/-Host/-Proto, passes
//     WebSocket and other Upgrade requests through, flushes streamed
//     responses at once, and answers 502 with a small page when the backend
//     cannot be reached.
//   - [Server] serves a handler over TLS, HTTP/2 and HTTP/1.1, with
//     timeouts and header-size limits for a server facing the Internet, and
//     drains its connections on Shutdown.
//
// Why a package of its own: the certificate engine (the root package's
// Manager) and the proxy change for different reasons. The proxy takes a
// *tls.Config from its caller and never imports the engine, so the same
// Server fronts sites with certificates from a Manager, from a certserver,
// or from files.
//
// What it does not do: it obtains no certificates and answers no ACME
// challenge itself (the caller's tls.Config does, including tls-alpn-01
// through GetCertificate, and the Manager's HTTPHandler does http-01 and the
// HTTP-to-HTTPS redirect on :80); it does not listen on plain HTTP; it does
// not balance load between several backends for one name, retry failed
// requests, cache responses, or rewrite bodies; and it does not trust
// forwarding headers sent by clients: X-Forwarded-For and X-Real-IP are set
// from the connection's address, never appended to what a client claims.
package proxy
