// Package policy is the gate every name passes before the rest of
// certkeeper sees it: it normalises and validates hostnames (Normalize,
// Normalizer) and decides whether a normalised name may have a certificate
// (Policy, Func, Allowlist).
//
// Why a separate gate: names arrive from the network (a ClientHello's SNI,
// an HTTP Host header, a certserver request body) and end up in storage
// keys, file names, log lines and ACME orders. Normalising them once, here,
// means that "A.Test.", "a.test" and "a.test." are one certificate, that
// "ünï.test" is stored under its punycode form, and that "../x" or
// "a\x00b" never reach a backend. An SNI flood of garbage is refused
// without any storage or CA traffic.
//
// What this package does not do: it does not resolve names or check that
// they point at this host (package doctor does, before an order), it does
// not consult the Public Suffix List ("*.test" and "*.co.uk" are
// syntactically valid wildcards; a CA refuses the latter), and it does not
// rate-limit issuance itself: rate limits and ask-URL policies are
// further Policy implementations composed by the caller.
package policy
