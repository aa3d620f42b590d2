// Package testsvc runs real third-party servers (redis-server, PostgreSQL,
// BIND 9's named, Knot DNS's knotd, PowerDNS's pdns_server) as children of a
// test, on free loopback ports, so that end-to-end tests talk to the software
// certkeeper talks to in production instead of to fakes.
//
// Every server is started by the test that needs it, listens on 127.0.0.1
// only, keeps its files in t.TempDir(), and is killed by t.Cleanup. Its
// output is kept in memory and printed through t.Log only if the test failed.
//
// A component that cannot be had (the binary is not installed, it cannot be
// built) goes through [Unavailable]: run by hand, the test is skipped with a
// hint saying what to install; under CI=true it fails, so a CI run can never
// pass by skipping the real thing.
//
// The same machinery ([StartProcess], [FreePort], [Unavailable]) serves
// internal/testca, which runs Pebble.
//
// It does not start the servers certkeeper itself implements, and it does not
// install anything.
package testsvc
