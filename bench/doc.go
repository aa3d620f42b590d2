// Package bench holds certkeeper's benchmarks that a user can rerun on
// their own machine: the latency of a first (on-demand) handshake against a
// real ACME CA, and full TLS handshakes per second against a plain
// crypto/tls server with one fixed certificate. Results are recorded in
// docs/performance.md as ratios against a baseline measured in the same run.
//
// Run them with:
//
//	go test ./bench -run . -v                  # the latency check (50 names)
//	go test ./bench -run ^$ -bench . -benchtime 5s
//
// Commands beside it: bench/handshakes (full handshakes per second against
// a fixed-certificate server) and bench/scale (100,000 stored certificates:
// memory per cached and evicted name, start-up, cold and hot handshakes).
package bench
