//go:build !race

package certkeeper_test

const raceEnabled = false
