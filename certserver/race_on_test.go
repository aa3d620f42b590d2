//go:build race

package certserver_test

// raceEnabled: under the race detector sync.Pool drops items at random, so
// allocation counts are asserted only without it.
const raceEnabled = true
