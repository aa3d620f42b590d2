package status

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/storage"
)

// ErrNothingStored is returned by Remove when storage holds nothing under
// the key or name it was given.
var ErrNothingStored = errors.New("nothing stored under it")

// Remove deletes from st what status lists under what, and returns the
// keys it removed:
//
//   - a certificate's storage key (certificates/ISSUER/NAME.json, the
//     key of "certkeeper status --json", and the label of a damaged
//     record): that record, readable or not;
//   - a failing first issuance's key (failing/NAME): that entry;
//   - a name: every certificate record whose primary name it is (each
//     issuer's, the RSA twin), its failing first issuances and an order
//     an issuance cut short left with its key (storage.PendingOrderKey).
//
// It is how a damaged record, a certificate for a name no longer served,
// or the failure of a name nobody will ask for again leaves status on a
// storage that has no files to delete (Redis, PostgreSQL). A Manager
// running on st keeps serving a certificate it holds in memory until it
// stops and, while its policy allows the name, stores it again at its
// next renewal check and renews it: take the name out of the policy
// first.
func Remove(ctx context.Context, st storage.Storage, what string) ([]string, error) {
	var keys, failing []string
	switch {
	case strings.HasPrefix(what, storage.CertificatePrefix("")):
		// Listed, not loaded: a value that does not decrypt goes too.
		found, err := st.List(ctx, what)
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", what, err)
		}
		if !slices.Contains(found, what) {
			return nil, fmt.Errorf("%s: %w", what, ErrNothingStored)
		}
		keys = []string{what}
	case strings.HasPrefix(what, failingPrefix):
		failing = []string{what}
	default:
		name, err := hostname.Normalizer{AllowIP: true, AllowWildcard: true}.Normalize(what)
		if err != nil {
			return nil, err
		}
		err = storage.EachCertificate(ctx, st, nil, func(key string, _ []byte, rec *storage.Certificate, _ error) bool {
			if rec != nil && len(rec.Names) > 0 && rec.Names[0] == name {
				keys = append(keys, key)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		failing = []string{FailingKey(name, ""), FailingKey(name, "rsa")}
		// An order an issuance cut short left, with its key.
		for _, variant := range []string{"", "rsa"} {
			if k, err := storage.PendingOrderKey(name, variant); err == nil {
				if _, err := st.Load(ctx, k); !errors.Is(err, fs.ErrNotExist) {
					keys = append(keys, k)
				}
			}
		}
	}
	var removed []string
	for _, key := range keys {
		if err := st.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("deleting %s: %w", key, err)
		}
		removed = append(removed, key)
	}
	// The failures of the records removed (renewals) and the failing
	// first issuances asked for go from the map status reads them from.
	_, err := UpdateFailures(ctx, st, func(all map[string]Failure) bool {
		changed := false
		for _, key := range append(keys, failing...) {
			if _, ok := all[key]; ok {
				delete(all, key)
				changed = true
				if strings.HasPrefix(key, failingPrefix) {
					removed = append(removed, key)
				}
			}
		}
		return changed
	}, nil)
	if err != nil {
		return removed, fmt.Errorf("removing failures: %w", err)
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("%s: %w", what, ErrNothingStored)
	}
	return removed, nil
}
