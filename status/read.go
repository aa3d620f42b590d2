package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"time"

	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/storage"
)

// Where a Manager keeps the state status shows beside the certificates.
var (
	// SeenKey holds the last handshake per primary name (unix seconds).
	SeenKey = storage.StateKey("seen")
	// FailuresKey holds the last failure per failing certificate (by
	// storage key) or name (by FailingKey), as a map of Failure.
	FailuresKey = storage.StateKey("renewal-errors")
)

// Failure is the last failed attempt to obtain or renew a certificate, as
// a Manager keeps it in storage (under FailuresKey) for status. It is a
// record, not an error: its Error field holds the error's text.
type Failure struct {
	Names   []string  `json:"names"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
	RetryAt time.Time `json:"retry_at"`
	Attempt int       `json:"attempt"`
	// FirstIssue reports whether the failure is of a name's first
	// issuance (kept by FailingKey) rather than of a renewal (kept by the
	// certificate's storage key).
	FirstIssue bool `json:"first_issue,omitempty"`
}

// FailingKey is the key, in the map under FailuresKey and in Cert.Key, of
// a name whose first issuance is failing: it has no storage key yet.
// variant is "" for the default (ECDSA) certificate, "rsa" for the RSA
// fallback.
func FailingKey(name, variant string) string {
	if variant != "" {
		return "failing/" + variant + "/" + name
	}
	return "failing/" + name
}

// firstIssues lists the names whose first issuance is failing.
func firstIssues(failures map[string]Failure) []Cert {
	var out []Cert
	for key, f := range failures {
		if !f.FirstIssue {
			continue
		}
		out = append(out, Cert{Names: f.Names, Key: key, State: Failing, NextRenewal: f.RetryAt,
			LastError: f.Error, LastErrorAt: f.At, RetryAt: f.RetryAt})
	}
	return out
}

// LoadState reads the state "certkeeper status" shows beside the
// certificates: last-seen times by primary name, and the failures by
// storage key (renewals) or FailingKey (first issues).
func LoadState(ctx context.Context, st storage.Storage) (seen map[string]time.Time, failures map[string]Failure, err error) {
	seen = map[string]time.Time{}
	failures = map[string]Failure{}
	raw := map[string]int64{}
	if err := loadJSON(ctx, st, SeenKey, &raw); err != nil {
		return nil, nil, err
	}
	for name, s := range raw {
		seen[name] = time.Unix(s, 0).UTC()
	}
	if err := loadJSON(ctx, st, FailuresKey, &failures); err != nil {
		return nil, nil, err
	}
	return seen, failures, nil
}

// loadJSON decodes the value under key into v; an absent key leaves v as
// it is.
func loadJSON(ctx context.Context, st storage.Storage, key string, v any) error {
	data, err := st.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s is damaged (delete it; a running certkeeper writes it again): %w", key, err)
	}
	return nil
}

// Read returns the status of every certificate in st, and of every name
// whose first issuance is failing (state "failing", no NotAfter, Key
// FailingKey(name)), sorted by key. A damaged record is
// listed with state "damaged", named by its storage key, rather than
// failing the whole listing.
func Read(ctx context.Context, st storage.Storage, now time.Time) ([]Cert, error) {
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return nil, fmt.Errorf("listing certificates: %w", err)
	}
	seen, failures, err := LoadState(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("reading certkeeper's state: %w", err)
	}
	out := []Cert{}
	for _, key := range keys {
		data, err := st.Load(ctx, key)
		if errors.Is(err, storage.ErrInvalidRecord) {
			// Refused by the storage itself (a private key in clear in
			// an encrypted storage): listed, as any damaged record.
			out = append(out, Cert{Key: key, State: Damaged, LastError: err.Error()})
			continue
		}
		if err != nil {
			continue // deleted since List
		}
		rec, err := storage.UnmarshalCertificate(key, data)
		if err != nil {
			out = append(out, Cert{Key: key, State: Damaged, LastError: err.Error()})
			continue
		}
		leaf, err := rec.Leaf()
		if err != nil {
			out = append(out, Cert{Key: key, Names: rec.Names, State: Damaged, LastError: err.Error()})
			continue
		}
		c := renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber}
		s := Cert{Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter, NextRenewal: renewal.Due(c, now, nil),
			OnDemand: rec.OnDemand, Key: key}
		if len(rec.Names) > 0 {
			s.LastSeen = seen[rec.Names[0]]
		}
		if f, ok := failures[key]; ok {
			s.LastError, s.LastErrorAt, s.RetryAt = f.Error, f.At, f.RetryAt
			if !f.RetryAt.IsZero() {
				s.NextRenewal = f.RetryAt
			}
		}
		s.State = state(s, leaf.NotBefore, now)
		out = append(out, s)
	}
	out = append(out, firstIssues(failures)...)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
