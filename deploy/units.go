// Package deploy holds the service definitions this directory ships —
// systemd's units for the proxy and for renewing certificate files, and
// launchd's property list — embedded, so that a binary installed with
// "go install", without this repository, can print them ("certkeeper
// service unit NAME"). The files are the source; nothing here changes them.
package deploy

import (
	"embed"
	"io/fs"
	"slices"
)

//go:embed certkeeper.service certkeeper-renew.service certkeeper-renew.timer com.certkeeper.proxy.plist
var units embed.FS

// Units returns the names of the service definitions, sorted.
func Units() []string {
	entries, _ := fs.ReadDir(units, ".")
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// Unit returns the service definition name (one of Units) as shipped.
func Unit(name string) ([]byte, error) {
	return units.ReadFile(name)
}

// InstalledPath is the path of the binary the definitions run.
const InstalledPath = "/usr/local/bin/certkeeper"
