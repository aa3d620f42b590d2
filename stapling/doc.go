// Package stapling fetches, verifies, stores and refreshes OCSP staples
// (RFC 6960 responses sent in the TLS handshake, RFC 6066 §8), for the
// certificates whose CA still runs an OCSP responder.
//
// Let's Encrypt ended OCSP in 2025, so most certificates certkeeper
// manages name no responder: for those, everything here is a no-op that
// costs one slice-length check (HasOCSP) and makes no request and no log.
//
// A staple is only ever kept or served after Verify has checked it: a
// well-formed successful response, signed by the certificate's issuer (or
// by a responder the issuer delegated to, RFC 6960 §4.2.2.2), for this
// certificate's serial number, saying "good", and current (thisUpdate not
// in the future, nextUpdate not past). A revoked or unknown status, an
// expired or badly signed response is never stapled. Staples are stored
// under storage.StapleKey of the certificate's SHA-256 fingerprint, so a
// renewed certificate never finds its predecessor's staple, and a cluster
// fetches each staple about once per refresh rather than once per node
// restart. A staple is refreshed at half its validity (thisUpdate to
// nextUpdate).
//
// Certificates with the TLS Feature "status_request" extension
// (must-staple, RFC 7633) fail at clients without a staple: when no good
// staple can be had for one, Keeper logs at Error on every attempt and
// keeps trying.
//
// What it does not do: it does not check revocation for clients, fetch
// CRLs, or staple for certificates without an issuer certificate in their
// chain.
package stapling
