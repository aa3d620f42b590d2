//go:build race

package certkeeper_test

// raceEnabled: the race detector multiplies memory use, so RSS bounds are
// checked only without it (scripts/test.sh runs those tests both ways).
const raceEnabled = true
