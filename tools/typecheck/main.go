// Command typecheck type-checks certkeeper's packages for other operating
// systems and architectures from source, without compiling them.
//
// scripts/test.sh cross-builds the binary once per operating system; a full
// build per architecture too would compile the standard library and every
// dependency eight times, most of CI's time for little gain: for pure Go with
// CGO_ENABLED=0, what differs between amd64 and arm64 of one system is which
// files their build constraints select and the types they declare (for
// example syscall.Stat_t's field types). Type-checking every package, its
// dependencies included, for a target catches exactly that, at a fraction of
// the cost of compiling. Test files are checked too.
//
//	go run ./typecheck -dir .. linux/arm64 darwin/arm64 ./...
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/tools/go/packages"
)

func main() {
	dir := flag.String("dir", ".", "the module `DIR` whose packages are checked")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: typecheck [-dir DIR] GOOS/GOARCH... [PACKAGES...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	var targets, patterns []string
	for _, a := range flag.Args() {
		if strings.Contains(a, "/") && !strings.HasPrefix(a, ".") {
			targets = append(targets, a)
		} else {
			patterns = append(patterns, a)
		}
	}
	if len(targets) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	failed := false
	for _, t := range targets {
		goos, goarch, _ := strings.Cut(t, "/")
		start := time.Now()
		n, err := check(*dir, goos, goarch, patterns)
		if err != nil {
			fmt.Fprintf(os.Stderr, "typecheck %s: %v\n", t, err)
			failed = true
			continue
		}
		fmt.Printf("type-checked %s: %d packages in %.1fs\n", t, n, time.Since(start).Seconds())
	}
	if failed {
		os.Exit(1)
	}
}

// check loads patterns and all their dependencies from source for one
// target and returns how many packages were checked, or the errors found.
func check(dir, goos, goarch string, patterns []string) (int, error) {
	cfg := &packages.Config{
		Mode: packages.LoadAllSyntax,
		// Tests too: a test file that uses a helper declared in a file
		// of another system's build constraint fails only there.
		Tests: true,
		Dir:   dir,
		Env:   append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly"),
	}
	pkgs, err := packages.Load(cfg, patterns...)
	if err != nil {
		return 0, err
	}
	var errs []string
	n := 0
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		n++
		for _, e := range p.Errors {
			errs = append(errs, e.Error())
		}
	})
	if len(errs) > 0 {
		if len(errs) > 20 {
			errs = append(errs[:20], fmt.Sprintf("… and %d more", len(errs)-20))
		}
		return n, fmt.Errorf("%d errors:\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	return n, nil
}
