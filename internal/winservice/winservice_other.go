//go:build !windows

package winservice

import (
	"context"
	"io"
)

// Install registers the service name, running this executable with args
// (on Windows).
func Install(name string, args []string) error { return ErrNotWindows }

// Uninstall stops and deletes the service name (on Windows).
func Uninstall(name string) error { return ErrNotWindows }

// Run runs run under the service manager as the service name (on
// Windows).
func Run(name string, run func(ctx context.Context, logs io.Writer) int) error { return ErrNotWindows }
