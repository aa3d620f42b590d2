// Command buildpebble builds the Pebble test CA as package testca runs it
// (the pinned version from tools/go.mod, with testca's patch) into the
// directory given, for scripts that build it once and set
// CERTKEEPER_PEBBLE_DIR to that directory:
//
//	go run ./internal/testca/buildpebble DIR
package main

import (
	"fmt"
	"os"

	"github.com/certkeeper/certkeeper/internal/testca"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/testca/buildpebble DIR")
		os.Exit(2)
	}
	if err := testca.BuildPebble(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "buildpebble:", err)
		os.Exit(1)
	}
}
