//go:build !windows

package cli

import (
	"context"
	"errors"
)

var errNotWindows = errors.New("certkeeper service is for Windows; on Linux use deploy/certkeeper.service (systemd), " +
	"on macOS deploy/com.certkeeper.proxy.plist (launchd)")

func installService(name string, args []string) error { return errNotWindows }

func uninstallService(name string) error { return errNotWindows }

func runService(ctx context.Context, name string, args []string) error { return errNotWindows }
