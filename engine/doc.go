// Package engine builds a certkeeper.Manager, with its fallback chain of
// CAs, per-name rules and DNS solvers, from settings given the way the
// certkeeper command's proxy and server take them: CA names such as
// "letsencrypt", "staging" or "local", challenge names, wildcard zones.
//
// It exists so that a Go program configured like the command (from its
// own flags or file) gets the Manager the command would run, with the same
// checks, rather than repeating the wiring: which challenges each issuer
// tries in which order, which solvers answer them, dns-persist-01 tried
// first wherever DNS is set up, the Manager's own tls-alpn-01 and http-01
// solvers shared with issuers that have DNS ones.
//
// It does not parse flags or files, open storage (package storage/open
// does), decide which names may get certificates (the caller sets
// Manager.Policy) or listen: the Manager it returns is ready to serve.
// The one listener it starts is OneShot's, for an issuance outside a
// Manager (the command's cert issue), which has no server to answer
// http-01 or tls-alpn-01 on.
package engine
