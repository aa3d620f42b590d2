// Package hostname turns the names certkeeper is given into the one form it
// stores, compares and sends to CAs (Normalize, Normalizer), and refuses
// anything that is not a valid certificate identifier (*NameError, matched
// by ErrInvalidName).
//
// Why a package of its own: names arrive from the network (a ClientHello's
// SNI, an HTTP Host header, a certserver request body) and end up in
// storage keys, file names, log lines and ACME orders. Normalising them
// once means that "A.Test.", "a.test" and "a.test." are one certificate,
// that "ünï.test" is stored under its punycode form, and that "../x" or
// "a\x00b" never reach a backend. Issuers, storage-side tools and clients
// need this and nothing else from the name gate, so it is a leaf that
// imports no other certkeeper package; package policy, which decides
// whether a normalised name may have a certificate, builds on it.
//
// What this package does not do: it makes no decision about whether a
// name is allowed (package policy), resolves no names, and does not
// consult the Public Suffix List ("*.test" and "*.co.uk" are syntactically
// valid wildcards; a CA refuses the latter).
package hostname
