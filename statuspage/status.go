package statuspage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/storage"
)

// The states of a certificate, from good to bad.
const (
	StateFine     = "fine"     // nothing to do until NextRenewal
	StateRenewing = "renewing" // due for renewal now
	StateFailing  = "failing"  // the last renewal attempt failed; LastError says why
	StateExpiring = "expiring" // less than a tenth of its lifetime left
	StateExpired  = "expired"  // past NotAfter
	StateDamaged  = "damaged"  // the stored record cannot be read; LastError says why
)

// Cert is one certificate's status: what "certkeeper status --json" prints
// and what /status.json serves, field for field.
type Cert struct {
	Names    []string  `json:"names"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	// NextRenewal is when the certificate is due (by the lifetime rule; a
	// running Manager refines it with the CA's ARI window), or, after a
	// failed renewal, when the next attempt is.
	NextRenewal time.Time `json:"next_renewal"`
	State       string    `json:"state"`
	OnDemand    bool      `json:"on_demand"`
	// LastSeen is when a handshake last asked for it (written by a
	// running Manager every few minutes).
	LastSeen  time.Time `json:"last_seen,omitzero"`
	Key       string    `json:"key"`
	LastError string    `json:"last_error,omitempty"`
	// LastErrorAt is when the last renewal failed.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
}

// Read returns the status of every certificate in st, sorted by storage
// key. A damaged record is listed with state "damaged" rather than failing
// the whole listing.
func Read(ctx context.Context, st storage.Storage, now time.Time) ([]Cert, error) {
	seen, errs, err := certkeeper.LoadStatusState(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("reading certkeeper's state: %w", err)
	}
	out := []Cert{}
	err = storage.EachCertificate(ctx, st, nil, func(key string, _ []byte, rec *storage.Certificate, err error) bool {
		if errors.Is(err, storage.ErrInvalidRecord) {
			// A damaged record, or one refused by the storage itself (a
			// private key in clear in an encrypted storage): listed.
			out = append(out, Cert{Key: key, State: StateDamaged, LastError: err.Error()})
			return true
		}
		if err != nil {
			return true // the storage failed: left out, as a record deleted since List
		}
		leaf, err := rec.Leaf()
		if err != nil {
			out = append(out, Cert{Key: key, Names: rec.Names, State: StateDamaged, LastError: err.Error()})
			return true
		}
		c := renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber}
		s := Cert{Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter, NextRenewal: renewal.Due(c, now, nil),
			OnDemand: rec.OnDemand, Key: key}
		if len(rec.Names) > 0 {
			s.LastSeen = seen[rec.Names[0]]
		}
		if e, ok := errs[key]; ok {
			s.LastError, s.LastErrorAt, s.RetryAt = e.Error, e.At, e.RetryAt
			if !e.RetryAt.IsZero() {
				s.NextRenewal = e.RetryAt
			}
		}
		s.State = state(s, leaf.NotAfter.Sub(leaf.NotBefore), now)
		out = append(out, s)
		return true
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// state is the certificate's state; the worst applies.
func state(s Cert, life time.Duration, now time.Time) string {
	switch {
	case !now.Before(s.NotAfter):
		return StateExpired
	case s.NotAfter.Sub(now) < life/10:
		return StateExpiring
	case s.LastError != "":
		return StateFailing
	case !s.NextRenewal.After(now):
		return StateRenewing
	}
	return StateFine
}
