package statuspage

import (
	"context"
	"time"

	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// The states of a certificate, from good to bad.
//
// Deprecated: use the constants of package status.
const (
	StateFine     = status.Fine
	StateRenewing = status.Renewing
	StateFailing  = status.Failing
	StateExpiring = status.Expiring
	StateExpired  = status.Expired
	StateDamaged  = status.Damaged
)

// Cert is one certificate's status.
//
// Deprecated: use status.Cert, which it is an alias of.
type Cert = status.Cert

// Read returns the status of every certificate in st.
//
// Deprecated: use status.Read.
func Read(ctx context.Context, st storage.Storage, now time.Time) ([]Cert, error) {
	return status.Read(ctx, st, now)
}
