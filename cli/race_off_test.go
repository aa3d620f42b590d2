//go:build !race

package cli

// raceEnabled: under the race detector the whole suite runs, package
// beside package, on a shared machine; throughput ratios are measured in
// scripts/test.sh's own step instead, without it.
const raceEnabled = false
