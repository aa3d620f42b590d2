package truststore

import (
	"crypto/x509"
	"fmt"
	"io"
)

// WriteDone prints, one line each, the stores of results that Trust or
// Untrust changed for root, as "certkeeper ca trust" and "untrust" do:
// "NAME: DONE in the STORE store (WHERE)". Failed stores are left to the
// error Trust or Untrust returned.
func WriteDone(w io.Writer, root *x509.Certificate, done string, results []Result) error {
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		if _, err := fmt.Fprintf(w, "%s: %s in the %s store (%s)\n", Name(root), done, r.Store, r.Where); err != nil {
			return err
		}
	}
	return nil
}
