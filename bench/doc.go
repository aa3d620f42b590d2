// Package bench holds certkeeper's benchmarks that a user can rerun on
// their own machine: the latency of a first (on-demand) handshake against a
// real ACME CA, through the library and through the proxy binary; full TLS
// handshakes per second against a plain crypto/tls server with one fixed
// certificate (bench/handshakes); and the proxy binary's CPU per connection
// against a bare crypto/tls + net/http server (bench/binary); and 100,000 stored certificates on one node: memory
// per cached and evicted name, start-up, cold and hot handshakes
// (bench/scale). Results are
// recorded in docs/performance.md as ratios against a baseline measured in
// the same run.
//
// Run them with:
//
//	go test ./bench -run . -v                  # the latency checks (50 names each)
//	go test ./bench -run ^$ -bench . -benchtime 5s
//	go run ./bench/handshakes
//	go run ./bench/binary
//	go run ./bench/scale -n 100000
package bench
