//go:build !windows

package winservice

import (
	"context"
	"errors"
	"io"
)

// ErrNotWindows is the error of every function on other systems.
var ErrNotWindows = errors.New("certkeeper service is for Windows; on Linux use deploy/certkeeper.service (systemd), " +
	"on macOS deploy/com.certkeeper.proxy.plist (launchd)")

// Install registers the service name, running this executable with args
// (on Windows).
func Install(name string, args []string) error { return ErrNotWindows }

// Uninstall stops and deletes the service name (on Windows).
func Uninstall(name string) error { return ErrNotWindows }

// Run runs run under the service manager as the service name (on
// Windows).
func Run(name string, run func(ctx context.Context, logs io.Writer) int) error { return ErrNotWindows }
