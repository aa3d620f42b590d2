// Package buildinfo says which certkeeper this is: the version stamped at
// build time, else the module version or VCS revision Go recorded in the
// binary. It exists so that `certkeeper version`, the audit log and
// anything else that names the running build agree on one string.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version returns stamped (the version set with -ldflags -X) if it is not
// empty; else the main module's version from the build info, when Go
// recorded one (go install module@version); else "devel-" and the first
// 12 digits of the VCS revision; else "devel".
func Version(stamped string) string {
	if stamped != "" {
		return stamped
	}
	v := "devel"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v = "devel-" + s.Value[:12]
		}
	}
	return v
}

// String is how a program names itself and its build: "certkeeper
// v1.2.3 (go1.26.8 linux/amd64)", with Version(stamped).
func String(stamped string) string {
	return fmt.Sprintf("certkeeper %s (%s %s/%s)", Version(stamped), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
