package cli

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/certkeeper/certkeeper/engine"
)

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
