package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
)

// stringsFlag is a repeatable string flag.
type stringsFlag = cmdline.Strings

// durationFlag is a flag.Value for a duration that also takes days (7d).
type durationFlag = cmdline.Duration

// parseDuration parses a duration that may be given in days (7d, 1d12h).
func parseDuration(s string) (time.Duration, error) { return cmdline.ParseDuration(s) }

// flagName is how help writes a flag: -d, --storage.
func flagName(name string) string { return cmdline.FlagName(name) }

// defaultStorageDir is where certkeeper keeps its state when --storage is
// not given: the library's default (certkeeper.DefaultStorageDir).
func defaultStorageDir() string { return certkeeper.DefaultStorageDir() }

// caURL resolves the --ca shorthands (engine.CAURL).
func caURL(v string) string { return engine.CAURL(v) }

// caHTTPClient is the HTTP client for talking to a CA
// (engine.CAHTTPClient): the system roots (SSL_CERT_FILE and SSL_CERT_DIR
// work as usual) plus the PEM roots in rootsFile, if given.
func caHTTPClient(rootsFile string) (*http.Client, error) {
	var roots []byte
	if rootsFile != "" {
		data, err := os.ReadFile(rootsFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-roots: %w", err)
		}
		roots = append([]byte{}, data...) // not nil, even for an empty file
	}
	hc, err := engine.CAHTTPClient(roots)
	if errors.Is(err, engine.ErrNoRoots) {
		return nil, fmt.Errorf("--ca-roots %s: no PEM certificates found", rootsFile)
	}
	return hc, err
}
