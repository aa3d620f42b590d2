// Package winservice installs, removes and runs a program as a Windows
// service: the plumbing behind `certkeeper service`. The program's own
// command line (which subcommand to run) is the caller's; this package
// only registers it with the service manager (automatic start, restarted
// after a failure), and, when the service manager starts it, reports it
// running and turns Stop and Shutdown into the cancellation of a context,
// as SIGTERM is on unix.
//
// It exists apart from package cli so that the command only declares
// flags, and so that the Windows-only code and its golang.org/x/sys
// dependency stay behind one small API. On other systems every function
// returns an error that names the unix equivalents (systemd, launchd).
//
// It is internal: it serves certkeeper's binary, not Go programs that
// embed certkeeper (they have their own service wrappers).
package winservice

import (
	"errors"
	"path/filepath"
)

// ErrNotWindows is the error of every function on other systems.
var ErrNotWindows = errors.New("certkeeper service is for Windows; on Linux use deploy/certkeeper.service (systemd), " +
	"on macOS deploy/com.certkeeper.proxy.plist (launchd)")

// LogFile is where Run sends the output of the service named name, below
// programData (the value of %ProgramData%).
func LogFile(programData, name string) string {
	return filepath.Join(programData, "certkeeper", name+".log")
}
