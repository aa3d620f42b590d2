package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/storage"
)

// walkBatch is how many records Walk reads ahead of fn.
const walkBatch = 256

// Where a Manager keeps the state status shows beside the certificates.
var (
	// SeenKey holds the last handshake per primary name (unix seconds),
	// as one value.
	SeenKey = storage.StateKey("seen")
	// SeenShardPrefix is the prefix of the values that hold the same in
	// shards (state/seen/00.json …), as Managers that bound their memory
	// write them.
	SeenShardPrefix = strings.TrimSuffix(storage.StateKey("seen/"), ".json")
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
	// Last-seen times are kept in shards under SeenShardPrefix by
	// Managers that shard them, in the single SeenKey by older ones: the
	// latest time of a name wins.
	shards, err := st.List(ctx, SeenShardPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("listing last-seen times: %w", err)
	}
	for _, key := range append(shards, SeenKey) {
		raw := map[string]int64{}
		if err := loadJSON(ctx, st, key, &raw); err != nil {
			return nil, nil, err
		}
		for name, s := range raw {
			if t := time.Unix(s, 0).UTC(); t.After(seen[name]) {
				seen[name] = t
			}
		}
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
// FailingKey(name)), sorted by key. A damaged record is listed with state
// "damaged", named by its storage key, rather than failing the whole
// listing. It holds every entry: with many certificates, use Walk.
func Read(ctx context.Context, st storage.Storage, now time.Time) ([]Cert, error) {
	out := []Cert{}
	err := Walk(ctx, st, now, func(c Cert) error {
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Walk calls fn with the status of each certificate in st and of each
// name whose first issuance is failing, in key order, as Read lists them,
// holding one record at a time (and the list of keys): "certkeeper
// status" and /status.json stream it. An error from fn stops the walk and
// is returned.
func Walk(ctx context.Context, st storage.Storage, now time.Time, fn func(Cert) error) error {
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return fmt.Errorf("listing certificates: %w", err)
	}
	seen, failures, err := LoadState(ctx, st)
	if err != nil {
		return fmt.Errorf("reading certkeeper's state: %w", err)
	}
	// First-issue failures (keys "failing/…") sort after every
	// "certificates/…" key: they follow the certificates.
	first := firstIssues(failures)
	sort.Slice(first, func(i, j int) bool { return first[i].Key < first[j].Key })
	// Records are read and parsed walkBatch at a time by one worker per
	// CPU (parsing a record's chain and key is most of the cost), and
	// handed to fn in key order: memory is bounded by the batch.
	workers := min(runtime.GOMAXPROCS(0), 8)
	type result struct {
		c  Cert
		ok bool
	}
	batch := make([]result, walkBatch)
	for len(keys) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(len(keys), walkBatch)
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(workers, n) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					c, ok := readOne(ctx, st, keys[i], seen, failures, now)
					batch[i] = result{c, ok}
				}
			}()
		}
		wg.Wait()
		for i := range n {
			if batch[i].ok {
				if err := fn(batch[i].c); err != nil {
					return err
				}
			}
			batch[i] = result{}
		}
		keys = keys[n:]
	}
	for _, c := range first {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// readOne reads the status of the certificate under key; ok is false
// when it was deleted since it was listed.
func readOne(ctx context.Context, st storage.Storage, key string, seen map[string]time.Time, failures map[string]Failure, now time.Time) (Cert, bool) {
	data, err := st.Load(ctx, key)
	if errors.Is(err, storage.ErrInvalidRecord) {
		// Refused by the storage itself (a private key in clear in an
		// encrypted storage): listed, as any damaged record.
		return Cert{Key: key, State: Damaged, LastError: err.Error()}, true
	}
	if err != nil {
		return Cert{}, false // deleted since List
	}
	rec, err := storage.UnmarshalCertificate(key, data)
	if err != nil {
		return Cert{Key: key, State: Damaged, LastError: err.Error()}, true
	}
	leaf, err := rec.Leaf()
	if err != nil {
		return Cert{Key: key, Names: rec.Names, State: Damaged, LastError: err.Error()}, true
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
	return s, true
}
