// Package policy is the gate every name passes before the rest of
// certkeeper sees it: it normalises and validates hostnames (Normalize,
// Normalizer), decides whether a normalised name may have a certificate
// (Policy: Allowlist, AskURL, RequireOwnIP, Func, combined with All and
// Any), and keeps issuance within the CA's limits (CALimiter, IPLimiter,
// FailureBackoff).
//
// Why a separate gate: names arrive from the network (a ClientHello's SNI,
// an HTTP Host header, a certserver request body) and end up in storage
// keys, file names, log lines and ACME orders. Normalising them once, here,
// means that "A.Test.", "a.test" and "a.test." are one certificate, that
// "ünï.test" is stored under its punycode form, and that "../x" or
// "a\x00b" never reach a backend. An SNI flood of garbage is refused
// without any storage or CA traffic, and every cache and table here is
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
