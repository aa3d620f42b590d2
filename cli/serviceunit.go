package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/certkeeper/certkeeper/deploy"
)

func serviceUnitCmd() *Command {
	return &Command{
		UsageLine: "certkeeper service unit [NAME]",
		Short:     "print a systemd unit or launchd property list (Linux, macOS)",
		TakesArgs: true,
		ArgValues: deploy.Units(),
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) != 1 {
				return usagef("give one NAME: %s", strings.Join(deploy.Units(), ", "))
			}
			data, err := deploy.Unit(args[0])
			if err != nil {
				return usagef("no unit %q: give one of %s", args[0], strings.Join(deploy.Units(), ", "))
			}
			// The binary's own path where it is installed elsewhere ("go install": ~/go/bin).
			if exe, err := os.Executable(); err == nil && !strings.Contains(exe, "go-build") {
				if exe, err = filepath.EvalSymlinks(exe); err == nil && exe != deploy.InstalledPath {
					data = bytes.ReplaceAll(data, []byte(deploy.InstalledPath), []byte(exe))
					fmt.Fprintf(env.Stderr, "certkeeper: %s runs %s (this binary) instead of %s\n", args[0], exe, deploy.InstalledPath)
				}
			}
			_, err = env.Stdout.Write(data)
			return err
		},
	}
}
