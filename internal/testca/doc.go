// Package testca runs Pebble, Let's Encrypt's test ACME server, and its DNS
// companion pebble-challtestsrv as children of a test, on free 127.0.0.1
// ports, so that certkeeper's end-to-end tests issue, renew and revoke
// against a real CA (STYLE.md §9).
//
// [Start] builds the binaries pinned in tools/go.mod once per cache key (or
// takes them from $CERTKEEPER_PEBBLE_DIR), starts both servers with
// deterministic settings (no nonce rejection, no authorization reuse, no
// validation sleeps), and kills them when the test ends, printing their logs
// only if it failed. If Pebble cannot be had, the test is skipped with a
// hint, or fails under CI=true (testsvc.Unavailable).
//
// The returned [CA] tells where things are (DirectoryURL, HTTPPort, TLSPort,
// DNSAddr), what to trust (RootPool, HTTPClient, IssuingRootPool), counts
// what Pebble did from its log (Orders, Accounts, Replacements), and can be
// stopped and restarted. [NewFaultProxy] puts a proxy in front of it that
// makes the CA slow, flaky, rate limited or unreachable on demand.
//
// The package does not solve challenges: tests run their own solvers on
// HTTPPort and TLSPort, or publish TXT records with AddTXT.
package testca
