// Package policy is the gate every name passes before the rest of
// certkeeper issues for it: it decides whether a name, normalised by
// package hostname, may have a certificate (Policy: Allowlist, AskURL,
// RequireOwnIP, Func, combined with All and Any; Config builds them from
// a configuration's allow, require-own-ip and ask settings), and limits how many
// first issuances one client may start (IPLimiter).
//
// Why a separate gate: names arrive from the network (a ClientHello's SNI,
// an HTTP Host header, a certserver request body), and a name nobody
// configured must cost no storage or CA traffic. An SNI flood of garbage
// is refused before any lock or order, and every cache and table here is
// bounded, so a flood of distinct names holds bounded memory.
//
// The per-client limit is sized so that one client cannot spend a CA
// account's budget (Let's Encrypt's: 300 new orders per 3 hours), not to
// a small fixed rate: it exists to stop one client spending that budget,
// not to slow down legitimate first handshakes. The budget itself, and
// the backoff after failed issuances, are the Manager's own
// (internal/limit); a held-back order matches issuer.ErrRateLimited.
//
// What this package does not do: it does not normalise names (package
// hostname), does not issue, store or serve certificates, and keeps no
// state in storage. It does not consult the Public Suffix List ("*.test"
// and "*.co.uk" are syntactically valid wildcards; a CA refuses the
// latter), and apart from RequireOwnIP it resolves no names (package
// doctor checks DNS before an order).
package policy
