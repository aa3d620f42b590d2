// Package policy is the gate every name passes before the rest of
// certkeeper issues for it: it decides whether a name, normalised by
// package hostname, may have a certificate (Policy: Allowlist, AskURL,
// RequireOwnIP, Func, combined with All and Any), and limits how many
// first issuances one client may start (IPLimiter).
//
// Why a separate gate: names arrive from the network (a ClientHello's SNI,
// an HTTP Host header, a certserver request body), and a name nobody
// configured must cost no storage or CA traffic. An SNI flood of garbage
// is refused before any lock or order, and every cache and table here is
// bounded, so a flood of distinct names holds bounded memory.
//
// Rate limits are sized to the CA's published limits (Let's Encrypt's by
// default: 300 new orders per account per 3 hours, 5 failed
// authorizations per name per hour), not to a small fixed rate: they
// exist to keep an account out of the CA's penalty box and to stop one
// client spending its budget, not to slow down legitimate first
// handshakes.
//
// What this package does not do: it does not issue, store or serve
// certificates, and it keeps no state in storage itself (FailureBackoff
// and CALimiter hand their state to the Manager, which stores it). It does
// not consult the Public Suffix List ("*.test" and "*.co.uk" are
// syntactically valid wildcards; a CA refuses the latter), and apart from
// RequireOwnIP it resolves no names (package doctor checks DNS before an
// order).
package policy
