package cli

import (
	"context"
	"flag"
	"io"

	"github.com/certkeeper/certkeeper/internal/winservice"
)

// defaultServiceName is the Windows service's name unless --name says
// otherwise.
const defaultServiceName = "certkeeper"

func serviceCmd() *Command {
	return &Command{
		UsageLine: "certkeeper service COMMAND [flags]",
		Short:     "run certkeeper as a service (Windows; a unit to install on Linux and macOS)",
		Commands:  []*Command{serviceInstallCmd(), serviceUninstallCmd(), serviceRunCmd(), serviceUnitCmd()},
	}
}

func serviceInstallCmd() *Command {
	var name string
	return &Command{
		UsageLine: "certkeeper service install [flags] -- COMMAND [ARGS]",
		RawArgs:   true,
		Short:     "install a Windows service that runs COMMAND",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", defaultServiceName, "the service's `NAME`")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 {
				return usagef("service install needs the command to run after --, e.g. -- proxy --config FILE")
			}
			return winservice.Install(name, args)
		},
	}
}

func serviceUninstallCmd() *Command {
	var name string
	return &Command{
		UsageLine: "certkeeper service uninstall [flags]",
		Short:     "remove the Windows service",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", defaultServiceName, "the service's `NAME`")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			return winservice.Uninstall(name)
		},
	}
}

func serviceRunCmd() *Command {
	var name string
	return &Command{
		UsageLine: "certkeeper service run [flags] -- COMMAND [ARGS]",
		RawArgs:   true,
		Short:     "run COMMAND under the Windows service manager (the service does this)",
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", defaultServiceName, "the service's `NAME`")
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) == 0 {
				return usagef("service run needs the command to run after --")
			}
			return winservice.Run(name, func(ctx context.Context, logs io.Writer) int {
				return run(ctx, &Env{Stdout: logs, Stderr: logs}, args)
			})
		},
	}
}
