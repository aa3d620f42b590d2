package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/internal/ordered"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
)

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
	// Since is when the first of these failures in a row was, At the
	// last's: how long it has been failing, across restarts. Zero in a
	// failure stored by a certkeeper before 2026-12 (At stands for it).
	Since time.Time `json:"since,omitzero"`
	// FirstIssue reports whether the failure is of a name's first
	// issuance (kept by FailingKey) rather than of a renewal (kept by the
	// certificate's storage key).
	FirstIssue bool `json:"first_issue,omitempty"`
	// Scheduled reports, for a first issuance, that the Manager tries
	// again by itself at RetryAt (Manager.Keep, certkeeper server
	// --managed). Otherwise a name obtained on demand is tried again only
	// when a handshake asks for it, and not before RetryAt.
	Scheduled bool `json:"scheduled,omitempty"`
}

// FailingSince is when f's failures in a row began: Since, or At when a
// certkeeper that did not keep Since stored it.
func (f Failure) FailingSince() time.Time {
	if f.Since.IsZero() {
		return f.At
	}
	return f.Since
}

// FailingKey is the key, in the map under FailuresKey and in Cert.Key, of
// a name whose first issuance is failing: it has no storage key yet.
// variant is "" for the default (ECDSA) certificate, "rsa" for the RSA
// fallback.
func FailingKey(name, variant string) string {
	if variant != "" {
		return failingPrefix + variant + "/" + name
	}
	return failingPrefix + name
}

// failingPrefix begins every FailingKey.
const failingPrefix = "failing/"

// FailingName is the name of a FailingKey, and whether key is one.
func FailingName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, failingPrefix)
	if !ok {
		return "", false
	}
	return rest[strings.LastIndex(rest, "/")+1:], true // failing/rsa/NAME
}

// firstIssues lists the names whose first issuance is failing.
func firstIssues(failures map[string]Failure) []Cert {
	var out []Cert
	for key, f := range failures {
		if !f.FirstIssue {
			continue
		}
		c := Cert{Names: f.Names, Key: key, State: Failing, FirstIssue: true,
			LastError: f.Error, LastErrorAt: f.At, RetryAt: f.RetryAt}
		if f.Scheduled {
			c.NextRenewal = f.RetryAt
		}
		out = append(out, c)
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
// holding at most walkAhead records at a time (and the list of keys):
// "certkeeper status" and /status.json stream it. An error from fn stops
// the walk and is returned.
func Walk(ctx context.Context, st storage.Storage, now time.Time, fn func(Cert) error) error {
	return walk(ctx, st, now, fn, readOne)
}

// WalkDates is Walk without the check of each record's certificate and
// key that a Manager makes before serving it (and Walk makes, to call
// "damaged" what a Manager refuses): an entry's names, dates, failure and
// state come from the record's fields alone, and a record is damaged only
// if they do not decode. Without the serial, an entry's NextRenewal is
// the latest its renewal is planned for (renewal.Latest, the end of the
// window or range Walk draws from), so it is "renewing" only once that
// has passed. It reads a record in about half Walk's time (a benchmark:
// 36 µs against 71 µs from a directory); the alerts, which need no more,
// check with it every minute.
func WalkDates(ctx context.Context, st storage.Storage, now time.Time, fn func(Cert) error) error {
	return walk(ctx, st, now, fn, readDates)
}

// reader reads the status of the certificate under key (readOne,
// readDates); ok is false when it was deleted since it was listed.
type reader func(ctx context.Context, st storage.Storage, key string, seen map[string]time.Time, failures map[string]Failure, now time.Time) (c Cert, ok bool)

func walk(ctx context.Context, st storage.Storage, now time.Time, fn func(Cert) error, readOne reader) error {
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
	read := func(key string) (Cert, bool) { return readOne(ctx, st, key, seen, failures, now) }
	if err := walkOrdered(ctx, keys, read, fn); err != nil {
		return err
	}
	for _, c := range first {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// walkAhead is how many records Walk's readers may be ahead of fn.
const walkAhead = 256

// walkOrdered reads keys with one reader per CPU (reading and checking a
// record is most of the cost) and calls fn with each result in key order,
// as soon as it and those before it are read (ordered.Each): fn's output
// overlaps the reading, and no more than walkAhead results wait for fn.
// Results whose ok is false (records deleted since List) are skipped.
func walkOrdered(ctx context.Context, keys []string, read func(key string) (Cert, bool), fn func(Cert) error) error {
	type result struct {
		c  Cert
		ok bool
	}
	return ordered.Each(ctx, keys, min(runtime.GOMAXPROCS(0), 8), walkAhead,
		func(_ context.Context, key string) result {
			c, ok := read(key)
			return result{c, ok}
		},
		func(_ string, r result) error {
			if !r.ok {
				return nil
			}
			return fn(r.c)
		})
}

// load loads the record under key for a reader: its data, or the entry
// that says why there is none (done; ok false when it was deleted since it
// was listed).
func load(ctx context.Context, st storage.Storage, key string) (data []byte, entry Cert, ok, done bool) {
	data, err := st.Load(ctx, key)
	switch {
	case errors.Is(err, storage.ErrInvalidRecord):
		// Refused by the storage itself (a private key in clear in an
		// encrypted storage): listed, as any damaged record.
		return nil, Cert{Key: key, State: Damaged, LastError: err.Error()}, true, true
	case errors.Is(err, fs.ErrNotExist):
		return nil, Cert{}, false, true // deleted since List
	case err != nil: // unreadable (permissions, I/O): listed, not hidden
		return nil, Cert{Key: key, State: Damaged, LastError: err.Error()}, true, true
	}
	return data, Cert{}, true, false
}

// readDates is WalkDates' reader: the record's fields, without parsing
// its certificate or key.
func readDates(ctx context.Context, st storage.Storage, key string, seen map[string]time.Time, failures map[string]Failure, now time.Time) (Cert, bool) {
	data, entry, ok, done := load(ctx, st, key)
	if done {
		return entry, ok
	}
	rec, err := storage.UnmarshalFields(key, data)
	if err == nil && rec.NotAfter.IsZero() {
		err = fmt.Errorf("certificate record %s: no not_after", key)
	}
	if err != nil {
		return Cert{Key: key, State: Damaged, LastError: err.Error()}, true
	}
	c := renewal.Cert{NotBefore: rec.NotBefore, NotAfter: rec.NotAfter, ARI: renewal.Stored(rec.RenewalWindow)}
	return finish(Cert{Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter, NotBefore: rec.NotBefore,
		NextRenewal: planned(renewal.Latest(c, time.Time{}), now), OnDemand: rec.OnDemand, Key: key}, rec.Revoked, seen, failures, now), true
}

// readOne is Walk's reader: the record checked as a Manager checks it.
func readOne(ctx context.Context, st storage.Storage, key string, seen map[string]time.Time, failures map[string]Failure, now time.Time) (Cert, bool) {
	data, entry, ok, done := load(ctx, st, key)
	if done {
		return entry, ok
	}
	return check(key, data, seen, failures, now), true
}

// check is the status of the record data stored under key, checked as a
// Manager checks it before serving it (the key belongs to the chain, the
// leaf covers the names): status calls "damaged" what a Manager refuses.
func check(key string, data []byte, seen map[string]time.Time, failures map[string]Failure, now time.Time) Cert {
	rec, leaf, err := storage.UnmarshalCertificateLeaf(key, data)
	if err != nil && encrypted.IsSealed(data) { // among records in clear: not a JSON error to decode
		err = fmt.Errorf("%s is encrypted (sealed with a storage key): it reads only with the storage key file the proxy or server uses", key)
	}
	if err != nil {
		return Cert{Key: key, State: Damaged, LastError: err.Error()}
	}
	c := renewal.Cert{NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, Serial: leaf.SerialNumber,
		ARI: renewal.Stored(rec.RenewalWindow)} // the CA's window, as a Manager last asked it
	return finish(Cert{Names: rec.Names, Issuer: rec.Issuer, NotAfter: rec.NotAfter, NotBefore: leaf.NotBefore, NextRenewal: planned(renewal.Due(c, time.Time{}, nil), now),
		OnDemand: rec.OnDemand, Key: key}, rec.Revoked, seen, failures, now)
}

// CheckRecord checks the certificate record under key as Walk does (as a
// Manager checks it before serving it), for a reader of the fields alone
// (WalkDates) about to act on one: the error says why it is damaged; nil
// if it is not, or is gone.
func CheckRecord(ctx context.Context, st storage.Storage, key string) error {
	data, entry, _, done := load(ctx, st, key)
	if !done {
		entry = check(key, data, nil, nil, time.Now())
	}
	if entry.State == Damaged {
		return errors.New(entry.LastError)
	}
	return nil
}

// WalkCovering is Walk for the certificates that cover one of names
// (Cert.Covers; normalised names), what "certkeeper status NAME" lists: a
// record whose names (decoded alone, as WalkDates does) cover none of
// them is skipped without the check of its certificate and key, which
// is most of a record's cost. A record whose names cannot be read is
// checked and passed to fn, as it may be one of theirs; so are the
// failing first issuances, all of them. fn must filter as before. With
// no names it is Walk.
func WalkCovering(ctx context.Context, st storage.Storage, now time.Time, names []string, fn func(Cert) error) error {
	if len(names) == 0 {
		return Walk(ctx, st, now, fn)
	}
	return walk(ctx, st, now, fn, func(ctx context.Context, st storage.Storage, key string, seen map[string]time.Time, failures map[string]Failure, now time.Time) (Cert, bool) {
		data, entry, ok, done := load(ctx, st, key)
		if done {
			return entry, ok
		}
		if f, err := storage.UnmarshalFields(key, data); err == nil && !slices.ContainsFunc(names, Cert{Names: f.Names}.Covers) {
			return Cert{}, false
		}
		return check(key, data, seen, failures, now), true
	})
}

// planned is a certificate's due time as renewal planned it (from a zero
// now: not moved to now once it has passed, so that an overdue one says
// when it was due), or now when there is none (no lifetime known).
func planned(due, now time.Time) time.Time {
	if due.IsZero() {
		return now
	}
	return due
}

// finish completes a reader's entry s: its last-seen time, revocation,
// failure and state.
func finish(s Cert, revoked *storage.Revocation, seen map[string]time.Time, failures map[string]Failure, now time.Time) Cert {
	if len(s.Names) > 0 {
		s.LastSeen = seen[s.Names[0]]
	}
	if revoked != nil {
		s.Revoked, s.NextRenewal = revoked.Reason, now // replaced at once
	}
	if f, ok := failures[s.Key]; ok {
		s.LastError, s.LastErrorAt, s.RetryAt = f.Error, f.At, f.RetryAt
		if !f.RetryAt.IsZero() {
			s.NextRenewal = f.RetryAt
		}
	}
	s.State = state(s, s.NotBefore, now)
	// An on-demand certificate no handshake asked for in DefaultUnusedAfter
	// is let lapse on purpose: not overdue.
	unused := s.OnDemand && !s.LastSeen.IsZero() && now.Sub(s.LastSeen) > DefaultUnusedAfter
	s.Overdue = s.State == Renewing && s.Revoked == "" && !unused && now.Sub(s.NextRenewal) > OverdueAfter(s.NotAfter.Sub(s.NotBefore))
	return s
}
