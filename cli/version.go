package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags
// "-X github.com/certkeeper/certkeeper/cli.version=v1.2.3";
// otherwise the module version or VCS revision from the build info is used.
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			} else {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						v = "devel-" + s.Value[:12]
					}
				}
			}
		}
	}
	return fmt.Sprintf("certkeeper %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func versionCmd() *Command {
	return &Command{
		UsageLine: "certkeeper version",
		Short:     "print certkeeper's version",
		Long: `Version prints certkeeper's version, the Go version it was built with, and the platform:

	$ certkeeper version
	certkeeper v0.1.0 (go1.26.8 linux/amd64)

"certkeeper --version" prints the same.`,
		Run: func(_ context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("version takes no arguments")
			}
			fmt.Fprintln(env.Stdout, versionString())
			return nil
		},
	}
}
