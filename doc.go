// Package certkeeper gives TLS servers certificates that manage themselves.
//
// A Manager obtains a certificate from an ACME CA (Let's Encrypt by
// default) at the first TLS handshake for a name its Policy allows, stores
// it, serves it from memory ever after, and renews it in the background:
//
//	m := &certkeeper.Manager{Policy: policy.Allowlist("example.com", "www.example.com")}
//	log.Fatal(m.Serve()) // HTTPS on :443, http-01 and redirects on :80
//
// or, inside an existing server:
//
//	srv := &http.Server{Addr: ":443", ReadHeaderTimeout: 10 * time.Second}
//	m.ConfigureServer(srv) // its TLSConfig: a first handshake may outlast srv's timeouts
//	go http.ListenAndServe(":80", m.HTTPHandler(nil))
//	srv.ListenAndServeTLS("", "")
//
// The handshake path is memory (exact name, then a one-label wildcard),
// storage, policy, then one issuance per name — shared by concurrent
// handshakes in the process and locked in storage across processes. A
// certificate in memory is served with no lock, no I/O and no allocation.
//
// The package does not speak ACME itself (package issuer/acmeca does, on
// github.com/mholt/acmez/v3), does not decide which names are allowed
// (package policy) and does not define where state lives (package storage):
// it manages certificates between them.
package certkeeper
