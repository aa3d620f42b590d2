package cli

import (
	"context"
	"fmt"

	"github.com/certkeeper/certkeeper/internal/buildinfo"
)

// version is set at build time with -ldflags
// "-X github.com/certkeeper/certkeeper/cli.version=v1.2.3";
// otherwise the module version or VCS revision from the build info is used.
var version = ""

// versionString names this build (buildinfo.String).
func versionString() string { return buildinfo.String(version) }

func versionCmd() *Command {
	return &Command{
		UsageLine: "certkeeper version",
		Short:     "print certkeeper's version",
		Run: func(_ context.Context, env *Env, args []string) error {
			fmt.Fprintln(env.Stdout, versionString())
			return nil
		},
	}
}
