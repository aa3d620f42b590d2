package migrate

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

// Results of an Action.
const (
	Imported    = "imported"
	WouldImport = "would import"
	// Replaced: the certificate replaced the one stored for its name
	// (ImportOptions.Overwrite); WouldReplace: it would, in a dry run.
	Replaced     = "replaced"
	WouldReplace = "would replace"
	Unchanged    = "unchanged"
	// Kept: storage already holds another certificate for the name, which
	// stays (without ImportOptions.Overwrite).
	Kept    = "kept"
	Skipped = "skipped"
	// Superseded: another certificate read has the same first name and CA,
	// so only one of them can be stored, and it covers all the names of
	// this one, which is not imported (see collisions).
	Superseded = "superseded"
	// NotCarried: a setting of the tool (a hook, how it answered
	// challenges) that certkeeper does not take over; Why says what to
	// give certkeeper instead. It is a note, not an entry.
	NotCarried = "not carried over"
)

// ImportOptions adjust Import. The zero value stores, and never replaces
// a stored certificate.
type ImportOptions struct {
	// DryRun stores nothing: Import reports what it would do.
	DryRun bool
	// Overwrite replaces a certificate stored for the same name (and CA)
	// that differs from the imported one, whichever expires later. Without
	// it the stored one is Kept: a certificate certkeeper obtained or
	// renewed is never replaced behind the operator's back.
	Overwrite bool
}

// Action is what Import did (or would do) with one entry.
type Action struct {
	// Kind is "account" or "certificate".
	Kind string
	// Subject is the account URL, or the certificate's names.
	Subject string
	// Key is the storage key written (or that would be).
	Key string
	// Source is where the entry was read.
	Source string
	// Result is Imported, WouldImport, Replaced, WouldReplace, Unchanged,
	// Kept, Superseded or Skipped; NotCarried for a setting (Kind
	// "setting").
	Result string
	// Why explains a Skipped result, or details another.
	Why string
}

// accountRecord is the account record package acmeca reads under
// storage.AccountKey (its own accountRecord): the same JSON fields, so a
// renewal orders from the imported account.
type accountRecord struct {
	Location  string    `json:"location"`
	Contact   []string  `json:"contact,omitempty"`
	Directory string    `json:"directory"`
	Created   time.Time `json:"created"`
}

// Import stores s's accounts and certificates in st, accounts first, so
// a certificate is never stored before the account that renews it. With
// opts.DryRun it stores nothing and reports what it would do. Entries
// already in st as they are in s are Unchanged; a certificate stored for
// the same name that differs is Kept, or Replaced with opts.Overwrite; an
// account that would replace a different one is Skipped.
// Of certificates of s with the same CA and first name, which certkeeper
// stores under one key, one is imported and the others are Skipped (or
// Superseded when it covers their names), in a dry run too.
// s.Problems are reported as Skipped too. The tool's settings that are not
// carried over follow as NotCarried: each certificate's after it, the
// tree's (s.Settings) last. The error is for st failing; the
// entries stored before it stay (each is whole).
func Import(ctx context.Context, st storage.Storage, s *State, opts ImportOptions) ([]Action, error) {
	var out []Action
	for _, a := range s.Accounts {
		act, err := importAccount(ctx, st, a, opts.DryRun)
		if err != nil {
			return out, err
		}
		out = append(out, act)
	}
	losers := collisions(s.Certificates, time.Now())
	for i, c := range s.Certificates {
		if l, ok := losers[i]; ok {
			// Not imported: its settings are not the ones to carry over
			// (the one imported in its place lists its own).
			out = append(out, collisionAction(c, s.Certificates[l.winner], l.key))
			continue
		}
		act, err := importCertificate(ctx, st, c, opts)
		if err != nil {
			return out, err
		}
		out = append(out, act)
		out = append(out, settingActions(strings.Join(c.Names, ","), c.Names[0], c.Settings)...)
	}
	for _, p := range s.Problems {
		out = append(out, Action{Kind: "entry", Source: p.Source, Result: Skipped, Why: p.Err.Error()})
	}
	return append(out, settingActions("", "", s.Settings)...), nil
}

func importAccount(ctx context.Context, st storage.Storage, a Account, dryRun bool) (Action, error) {
	act := Action{Kind: "account", Subject: a.Location, Source: a.Source}
	// Which email finds it: the one it is stored under, not the one the
	// old tool was given (certbot 2.x records no contact).
	act.Why = "stored without a contact: its certificates renew from it; certkeeper orders new ones from it when given no email"
	if a.Email != "" {
		act.Why = "stored for " + a.Email + ": its certificates renew from it; certkeeper orders new ones from it when given that email"
	}
	id := storage.IssuerID(a.DirectoryURL)
	recKey, err := storage.AccountKey(id, a.Email)
	if err != nil {
		act.Result, act.Why = Skipped, err.Error()
		return act, nil
	}
	privKey, err := storage.AccountPrivateKey(id, a.Email)
	if err != nil {
		act.Result, act.Why = Skipped, err.Error()
		return act, nil
	}
	act.Key = recKey
	data, err := st.Load(ctx, recKey)
	switch {
	case err == nil:
		var rec accountRecord
		if err := json.Unmarshal(data, &rec); err == nil && rec.Location == a.Location {
			if key, err := st.Load(ctx, privKey); err == nil && samePrivateKey(key, a.KeyPEM) {
				act.Result = Unchanged
				return act, nil
			}
		}
		act.Result = Skipped
		act.Why = fmt.Sprintf("storage already holds another account for %s and %s (%s): remove it first to import this one",
			a.DirectoryURL, emailOrNone(a.Email), recKey)
		return act, nil
	case !errors.Is(err, fs.ErrNotExist):
		return act, fmt.Errorf("loading %s: %w", recKey, err)
	}
	if dryRun {
		act.Result = WouldImport
		return act, nil
	}
	rec := accountRecord{Location: a.Location, Directory: a.DirectoryURL, Created: time.Now().UTC()}
	if a.Email != "" {
		rec.Contact = []string{"mailto:" + a.Email}
	}
	recJSON, err := json.MarshalIndent(rec, "", "\t")
	if err != nil {
		return act, err
	}
	// The key first, as acmeca stores it: a record is never without its key.
	if err := st.Store(ctx, privKey, a.KeyPEM); err != nil {
		return act, fmt.Errorf("storing account key %s: %w", privKey, err)
	}
	if err := st.Store(ctx, recKey, recJSON); err != nil {
		return act, fmt.Errorf("storing account %s: %w", recKey, err)
	}
	act.Result = Imported
	return act, nil
}

func importCertificate(ctx context.Context, st storage.Storage, c Certificate, opts ImportOptions) (Action, error) {
	act := Action{Kind: "certificate", Subject: strings.Join(c.Names, ","), Source: c.Source}
	id := storage.IssuerID(c.DirectoryURL)
	key, err := storage.CertificateKey(id, c.Names[0])
	if err != nil {
		act.Result, act.Why = Skipped, err.Error()
		return act, nil
	}
	act.Key = key
	now := time.Now()
	if now.After(c.Leaf.NotAfter) {
		act.Result = Skipped
		act.Why = fmt.Sprintf("expired at %s: certkeeper obtains a new one at the first handshake or with cert issue", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
		if why := renewedSince(ctx, st, key, c, now); why != "" {
			act.Result, act.Why = Kept, why
		}
		return act, nil
	}
	replaces := "" // what the import replaces, for messages
	data, err := st.Load(ctx, key)
	switch {
	case err == nil:
		old, err := storage.UnmarshalCertificate(key, data)
		if err == nil && bytes.Equal(old.ChainPEM, c.ChainPEM) && samePrivateKey(old.KeyPEM, c.KeyPEM) {
			act.Result = Unchanged
			return act, nil
		}
		if err != nil {
			replaces = fmt.Sprintf("the unreadable record at %s", key)
		} else {
			replaces = fmt.Sprintf("the certificate at %s (not after %s)", key, old.NotAfter.UTC().Format(time.RFC3339))
		}
		if !opts.Overwrite {
			act.Result = Kept
			switch {
			case err == nil && !old.NotAfter.Before(c.Leaf.NotAfter):
				act.Why = fmt.Sprintf("storage already holds a certificate for %s valid as long or longer (%s at %s); --overwrite replaces it",
					c.Names[0], old.NotAfter.UTC().Format(time.RFC3339), key)
				if lost := onlyIn(c.Names, old.Names); len(lost) > 0 {
					// One certificate per CA and first name: not "as good".
					act.Why = fmt.Sprintf("storage already holds a certificate for %s valid as long or longer (%s, %s at %s), but not for %s, which this one covers: "+
						"only one certificate per CA and first name is stored; --overwrite replaces it, or get one with certkeeper cert issue --ca %s -d %s",
						c.Names[0], strings.Join(old.Names, ","), old.NotAfter.UTC().Format(time.RFC3339), key, strings.Join(lost, ", "),
						c.DirectoryURL, strings.Join(lost, " -d "))
				}
			default:
				act.Why = fmt.Sprintf("storage already holds another certificate for %s, %s; --overwrite replaces it with this one (not after %s)",
					c.Names[0], replaces, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
			return act, nil
		}
		act.Why = fmt.Sprintf("replaces %s with this one (not after %s)", replaces, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	case !errors.Is(err, fs.ErrNotExist):
		return act, fmt.Errorf("loading %s: %w", key, err)
	}
	if opts.DryRun {
		act.Result = WouldImport
		if replaces != "" {
			act.Result = WouldReplace
		}
		return act, nil
	}
	rec := &storage.Certificate{
		Names: c.Names, Issuer: id, ChainPEM: c.ChainPEM, KeyPEM: c.KeyPEM,
		NotBefore: c.Leaf.NotBefore, NotAfter: c.Leaf.NotAfter, KeyType: string(issuer.KeyTypeOf(c.Leaf.PublicKey)),
		URL: c.URL, Account: c.Account, Email: c.Email, Obtained: now.UTC(),
	}
	value, err := storage.MarshalCertificate(rec)
	if err != nil {
		act.Result, act.Why = Skipped, err.Error()
		return act, nil
	}
	if err := st.Store(ctx, key, value); err != nil {
		return act, fmt.Errorf("storing %s: %w", key, err)
	}
	act.Result = Imported
	if replaces != "" {
		act.Result = Replaced
	}
	return act, nil
}

// renewedSince says why an expired certificate c of the tool's is no loss
// when storage holds an unexpired one under key covering all its names
// (certkeeper renewed what an earlier import brought in, and the import
// runs again); "" otherwise.
func renewedSince(ctx context.Context, st storage.Storage, key string, c Certificate, now time.Time) string {
	data, err := st.Load(ctx, key)
	if err != nil {
		return ""
	}
	old, err := storage.UnmarshalCertificate(key, data)
	if err != nil || !now.Before(old.NotAfter) || len(onlyIn(c.Names, old.Names)) > 0 {
		return ""
	}
	return fmt.Sprintf("expired at %s; storage holds a valid certificate for its names (not after %s at %s), renewed since",
		c.Leaf.NotAfter.UTC().Format(time.RFC3339), old.NotAfter.UTC().Format(time.RFC3339), key)
}

// samePrivateKey reports whether two PEM keys are the same key, whatever
// their encoding.
func samePrivateKey(a, b []byte) bool {
	ka, err1 := storage.ParsePrivateKeyPEM(a)
	kb, err2 := storage.ParsePrivateKeyPEM(b)
	if err1 != nil || err2 != nil {
		return false
	}
	eq, ok := ka.(interface{ Equal(crypto.PrivateKey) bool })
	return ok && eq.Equal(kb)
}

func emailOrNone(email string) string {
	if email == "" {
		return "no email"
	}
	return email
}
