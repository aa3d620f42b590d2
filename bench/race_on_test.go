//go:build race

package bench

// raceEnabled: the race detector slows instrumented code unevenly, so
// throughput ratios are measured without it.
const raceEnabled = true
