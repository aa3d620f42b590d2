package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// EachCertificate is the one loop over the certificate records of st, for
// the scans that read them all (status, deploy, sweeping expired records,
// repairs). It lists the keys under CertificatePrefix("") and, in List
// order, for each key that match accepts (nil: every key), loads the value
// and calls fn with the key, the value as loaded, and the decoded record
// (UnmarshalCertificate) or the error that loading or decoding gave. An
// error wrapping ErrInvalidRecord is a record that is damaged or that the
// storage refuses (a private key in clear in an encrypted storage); value
// is then what was loaded, if anything. A key deleted since List is
// skipped. The loop stops early when fn returns false.
//
// Records are loaded one after another, not as one snapshot. The error
// returned is List's, wrapped; errors of single records go to fn.
func EachCertificate(ctx context.Context, st Storage, match func(key string) bool,
	fn func(key string, value []byte, rec *Certificate, err error) bool) error {
	keys, err := st.List(ctx, CertificatePrefix(""))
	if err != nil {
		return fmt.Errorf("listing certificates: %w", err)
	}
	for _, key := range keys {
		if match != nil && !match(key) {
			continue
		}
		value, err := st.Load(ctx, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since List
		}
		var rec *Certificate
		if err == nil {
			rec, err = UnmarshalCertificate(key, value)
		}
		if !fn(key, value, rec, err) {
			return nil
		}
	}
	return nil
}
