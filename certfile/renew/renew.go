// Package renew renews certificate files: the key/certificate pairs of a
// certfile.Dir, for servers that read certificates from disk. It is what
// `certkeeper cert renew` runs, importable by any Go program:
//
//	r := &renew.Renewer{Dir: certfile.Dir("/etc/ssl"), Storage: st,
//		Issuers: func(ctx context.Context, s renew.Settings) (*issuer.Chain, func(), error) {
//			return &issuer.Chain{Issuers: []issuer.Issuer{ca}}, nil, nil
//		}}
//	results, err := r.Run(ctx)
//
// (ExampleRenewer runs it with the local CA.)
//
// A pair is due by the Manager's rule (the CA's ARI window when it offers
// one, else when a third of the lifetime is left, half under 10 days), by
// a grace period, or always with Force. Certificates are issued and stored
// through certkeeper.Issue (the one issuance path) before their files are
// written, so a run killed between the key file and the certificate file
// leaves a pair the next run repairs from storage. Runs on one directory
// are serialised by a lock in Storage.
//
// Each certificate's Settings (CA, challenge, profile, hooks, ...) are
// remembered in DIR/renewal/BASE.conf, as certbot's renewal files are: a
// run renews with them, with the Renewer's Override laid on top, and
// writes them back after a renewal, so a setting given once sticks.
package renew

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
)

// Action is what a run did with one certificate.
type Action string

// The actions of a Result.
const (
	Renewed    Action = "renewed"     // a pair was renewed
	Issued     Action = "issued"      // a Want entry without files was issued
	Written    Action = "written"     // a Want entry without files was written from storage, not ordered
	WouldWrite Action = "would write" // a Want entry storage holds, in a DryRun
	NotDue     Action = "not due"     // left alone
	WouldRenew Action = "would renew" // due, in a DryRun
	Failed     Action = "failed"      // renewal (or AfterRenew) failed; Detail says why
	Unparsable Action = "unparsable"  // the pair could not be read; left alone
	Skipped    Action = "skipped"     // self-signed and not issued here (see Renewer.Run); left alone
)

// Result is one certificate a run considered.
type Result struct {
	// Base is the pair's file name base (certfile.Pair.Base).
	Base string
	// Names are the certificate's names, the first naming the files; nil
	// for an unparsable pair.
	Names []string
	// Action is what was done, Detail the reason or the new expiry.
	Action Action
	Detail string
	// Err is the failure of a Failed certificate.
	Err error
	// Paths and NotAfter are the files written and the new certificate's
	// expiry, for Renewed and Issued.
	Paths    certfile.Paths
	NotAfter time.Time
	// Settings are the certificate's remembered settings with the
	// Renewer's Override laid on top: what it is (or would be) renewed
	// with. Email is filled in from storage when neither sets it, for the
	// order alone: it is not remembered.
	Settings Settings

	pair    *certfile.Pair    // nil for a Want entry with no files yet
	expired *x509.Certificate // of a Want entry with no files: the leaf storage holds, expired
	due     bool
	written bool   // a Want entry whose files were written from storage
	key     string // the storage key of the certificate renewed or issued
	// remembered are the settings read from the pair's file, before
	// Override; nil when it had none.
	remembered *Settings
	overridden bool // Settings has the Renewer's Override on top
	// storedEmail says Settings.Email was filled in from storage: it
	// orders, but nobody gave it, so it is neither remembered nor said
	// to have changed.
	storedEmail bool
}

// toRemember are the settings a renewal remembers: j.Settings, without an
// email only filled in from storage.
func (j *Result) toRemember() Settings {
	s := j.Settings
	if j.storedEmail {
		s.Email = ""
	}
	return s
}

// RenewalInfoer is what an ACME issuer answers about a certificate's
// renewal window (acmeca.Issuer's RenewalInfo, RFC 9773).
type RenewalInfoer interface {
	RenewalInfo(ctx context.Context, leaf *x509.Certificate) (acme.RenewalInfo, error)
}

// Renewer renews the certificate files of Dir that are due. Dir, Storage
// and Issuers are required; every other field's zero value works. A
// Renewer must not change while Run runs.
type Renewer struct {
	// Dir holds the pairs: DIR/private/NAME.key with DIR/certs/NAME.pem.
	Dir certfile.Dir

	// Storage keeps a copy of every certificate issued (and the ACME
	// account), repairs pairs and holds the run's lock.
	Storage storage.Storage

	// Issuers returns the issuer chain to renew with the given settings
	// (Result.Settings: Email is the one recorded with the certificate
	// when no setting names one), and a func that releases what the
	// chain holds (a challenge listener), or nil. It is called when the
	// first certificate with those settings is due, so a listener starts
	// only then; certificates whose settings differ only in hooks share
	// a chain, and a chain is released before the next is asked for, so
	// two never hold one listening address.
	Issuers func(ctx context.Context, s Settings) (*issuer.Chain, func(), error)

	// ARI, if set, returns what to ask for the CA's renewal window of
	// certificates with the given settings (nil: the lifetime rule).
	ARI func(s Settings) RenewalInfoer

	// Override holds settings given for this run (a command line's
	// flags): they are laid over each certificate's remembered settings
	// and remembered with them when it is renewed. Want entries are
	// issued with Override alone. With Want, only its entries take
	// Override: the other pairs due in the run are renewed with their
	// own settings (a migration trial's want run for wildcards renewed an
	// http-01 certificate due then with its dns-01 flags and hook, and
	// would have remembered them). Override.KeyType is the type of new
	// keys (for Want entries, with NewKey, and for pairs whose key cannot
	// be reused); empty keeps the type of the certificate replaced, or
	// ECDSA P-256.
	Override Settings

	// NewKey gives renewed certificates a new key; by default a renewal
	// keeps its key, unless its key_type (remembered or Override's) is
	// not the type of that key: then it gets a new key of that type.
	NewKey bool

	// Grace, if set, makes a certificate due when it expires within
	// Grace, instead of the Manager's rule. Force makes every pair due.
	Grace time.Duration
	Force bool

	// DryRun reports what would be renewed and changes nothing.
	DryRun bool

	// Want lists certificates to have (names, the first naming the
	// files): those without files are issued.
	Want [][]string

	// Only, if set, limits the run to the pairs (and Want entries) that
	// cover one of these names, or are named by it (certbot's renew
	// --cert-name); the others are not in the results. A name that none
	// covers fails the run.
	Only []string

	// BeforeRenew, if set, runs before each certificate is renewed or
	// issued (before its issuer chain is set up, so a pre-hook may free a
	// port for it); an error marks that certificate Failed.
	BeforeRenew func(ctx context.Context, r *Result) error

	// Check, if set, runs before each certificate's order, with the chain
	// it will be ordered from: an error marks that certificate Failed
	// with nothing ordered (engine.CheckDNS: a DNS server that is down, or
	// a wrong key, fails before an order the CA keeps pending).
	Check func(ctx context.Context, chain *issuer.Chain, names []string) error

	// AfterRenew, if set, runs after each certificate renewed or issued;
	// an error marks that certificate Failed.
	AfterRenew func(ctx context.Context, r *Result) error

	// Progress, if set, receives steps for a certificate: the issuer's,
	// and a pair repaired from storage.
	Progress func(name, step string)
	// Explain, if set, words a failed renewal's error as it is kept in
	// storage for status, its --nagios check and the status page (a
	// command line's flags for the fields the libraries name, as its
	// summary says them: a DNS trial read Resolver.Servers there and
	// --dns-resolver in the summary). Nil: the error's own text.
	Explain func(error) string
}

// keepWindow keeps w, the renewal window ari (the CA of leaf) suggested
// for it, in leaf's record in storage, where cert issue stored it, so that
// status plans its renewal as this run does. A record it cannot find or
// write only leaves status on the lifetime rule.
func (r *Renewer) keepWindow(ctx context.Context, ari RenewalInfoer, leaf *x509.Certificate, w renewal.Window) {
	iss, ok := ari.(interface{ ID() string })
	if !ok || !w.Valid() {
		return
	}
	_, _ = certkeeper.KeepRenewalWindow(ctx, r.Storage, iss.ID(), leaf, w.Start, w.End)
}

// LockDir takes the lock in st that serialises the runs writing into
// dir: a Renewer's Run takes it, and so should a first issuance into dir
// (IssueFiles), before it looks at what dir holds (Kept), so that two
// runs at once order one certificate, not two. It waits until the lock
// is free or ctx ends, and returns the func that releases it. waiting, if
// set, is told once the lock has been waited for a second that this run
// waits for another, which a user who started it should be told (a CLI
// trial's second cert issue waited in silence, then failed naming the
// lock's key).
func LockDir(ctx context.Context, st storage.Storage, dir certfile.Dir, waiting func(string)) (unlock func(), err error) {
	abs, _ := filepath.Abs(string(dir))
	sum := sha256.Sum256([]byte(abs))
	name := "certfile/" + hex.EncodeToString(sum[:8])
	first, cancel := context.WithTimeout(ctx, time.Second)
	unlock, err = st.Lock(first, name)
	cancel()
	if err != nil && ctx.Err() == nil && first.Err() != nil {
		if waiting != nil {
			waiting("waiting for another certkeeper run on " + string(dir) + " (cert issue or cert renew) to end")
		}
		unlock, err = st.Lock(ctx, name)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("another certkeeper run on %s (cert issue or cert renew) still held it when this one gave up: let it end, or look for one that hangs: %w", dir, ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("locking %s against another run on it: %w", dir, err)
	}
	return unlock, nil
}

// Run renews what is due and returns one Result per pair and Want entry,
// pairs first. A self-signed pair without remembered settings was not
// issued by a CA through certkeeper (Debian's ssl-cert-snakeoil in
// /etc/ssl, a placeholder made for a first start): it is Skipped, unless
// Want names it. Failures of single certificates (including settings that
// cannot be read, or issuers that cannot be set up) are in their Result;
// the error is for the run as a whole (lock, directory). A Dir that does
// not exist is an error wrapping fs.ErrNotExist, unless Want names
// certificates to issue into it: a mistyped directory would otherwise
// renew nothing, in silence, until the certificates expire.
func (r *Renewer) Run(ctx context.Context) ([]*Result, error) {
	if _, err := os.Stat(string(r.Dir)); errors.Is(err, fs.ErrNotExist) && len(r.Want) == 0 {
		return nil, fmt.Errorf("%s does not exist, so it holds nothing to renew: %w", r.Dir, err)
	} else if err == nil {
		// Before a key is read or a hook run from it (certfile.Dir.CheckOwned).
		if err := r.Dir.CheckOwned(); err != nil {
			return nil, err
		}
	}
	unlock, err := LockDir(ctx, r.Storage, r.Dir, func(s string) { r.progress(string(r.Dir), s) })
	if err != nil {
		return nil, err
	}
	defer unlock()
	results, err := r.scan(ctx)
	if err != nil {
		return nil, err
	}
	r.storedRevocations(ctx, results)
	now := time.Now()
	for _, j := range results {
		if j.pair != nil && j.Action == "" {
			var ari RenewalInfoer
			if r.ARI != nil && !r.Force && r.Grace == 0 {
				ari = r.ARI(j.Settings)
			}
			if j.Settings.Revoked != "" {
				j.due, j.Detail = true, "revoked ("+j.Settings.Revoked+")"
			} else {
				var w renewal.Window
				j.due, j.Detail, w = isDue(ctx, r.Force, r.Grace, ari, j.pair.Chain[0], now)
				if !j.due {
					r.keepWindow(ctx, ari, j.pair.Chain[0], w)
				}
			}
			switch {
			case !j.due && j.written:
				j.Action, j.Detail = Written, "from storage, no order; "+j.Detail
			case !j.due:
				j.Action = NotDue
				r.rememberHooks(j)
			}
		}
	}
	err = r.renewDue(ctx, results)
	r.deployPending(ctx, results)
	if !r.DryRun {
		r.noteFailures(ctx, results)
	}
	return results, err
}

// rememberHooks remembers at once, for a pair not due, the hooks the run
// gives (Override): a hook needs no renewal to be right, and a migration
// trial's cert renew -d NAME --deploy-hook CMD (as the certbot import
// advises for each hook it finds) said "not due" and forgot the hook, so
// the server was not reloaded after the first renewal. The other settings
// given are remembered when the certificate is renewed with them, as
// certbot's are; Detail says which were not.
func (r *Renewer) rememberHooks(j *Result) {
	if r.DryRun || !j.overridden || r.Override.IsZero() {
		return
	}
	var before Settings
	if j.remembered != nil {
		before = *j.remembered
	}
	after := before
	after.Override(Settings{PreHook: r.Override.PreHook, DeployHook: r.Override.DeployHook, PostHook: r.Override.PostHook})
	was, now, given := before.values(), after.values(), j.Settings.values()
	var remembered, later []string
	for _, key := range SettingsKeys() {
		switch {
		case now[key] != was[key]:
			remembered = append(remembered, key)
		case given[key] != now[key] && !slices.Contains(StorageKeys(), key):
			later = append(later, key)
		}
	}
	if len(remembered) > 0 {
		if err := SaveSettings(settingsPathBase(r.Dir, j.Base), after); err != nil {
			j.Action, j.Detail, j.Err = Failed, err.Error(), err
			return
		}
		j.remembered = &after
		j.Detail += "; " + strings.Join(remembered, ", ") + " remembered"
	}
	if len(later) > 0 {
		j.Detail += "; " + strings.Join(later, ", ") + " remembered once it is renewed with them (--force renews it now)"
	}
}

// noteFailures records, for status (status.UpdateFailures), each stored
// certificate whose renewal failed, and clears the record of each one
// renewed, or found not due: "certkeeper status" shows a certificate that
// cert renew cannot renew as failing, as it does one a Manager cannot,
// and one not due is not failing, whatever an earlier run's forced
// renewal met (a CLI trial's CA down for a --force run left it failing,
// and monitoring warning, until it was due two months on). A failure to
// record is not the run's: its results say what happened.
func (r *Renewer) noteFailures(ctx context.Context, results []*Result) {
	failed := map[string]*Result{} // by storage key
	var renewed []string
	notDue := map[string]*Result{} // by first name
	for _, j := range results {
		switch {
		case j.key != "":
			renewed = append(renewed, j.key) // a hook may have failed after it: renewed all the same
		case j.Action == Failed && j.pair != nil && j.Err != nil:
			if key := storedKey(ctx, r.Storage, j.pair); key != "" {
				failed[key] = j
			}
		case j.Action == NotDue && j.pair != nil && len(j.Names) > 0:
			notDue[j.Names[0]] = j
		}
	}
	if len(failed) == 0 && len(renewed) == 0 && len(notDue) == 0 {
		return
	}
	now := time.Now().UTC()
	_, _ = status.UpdateFailures(ctx, r.Storage, func(all map[string]status.Failure) bool {
		changed := false
		for key, f := range all {
			if len(f.Names) == 0 {
				continue
			}
			if j := notDue[f.Names[0]]; j != nil && storedKey(ctx, r.Storage, j.pair) == key {
				renewed = append(renewed, key) // its files' certificate: not due
			}
		}
		for _, key := range renewed {
			if _, ok := all[key]; ok {
				delete(all, key)
				changed = true
			}
		}
		for key, j := range failed {
			text := j.Err.Error()
			if r.Explain != nil {
				text = r.Explain(j.Err)
			}
			all[key] = status.Failure{Names: j.Names, Error: text, At: now, Attempt: all[key].Attempt + 1}
			changed = true
		}
		return changed
	}, nil)
}

// storedRevocations notes in the Settings of each pair whose certificate
// storage holds marked revoked (certkeeper.RevokeStored, "cert revoke -d")
// that it was, so that it is replaced (with a new key after
// keyCompromise) as after "cert revoke --cert". Storage is listed once.
func (r *Renewer) storedRevocations(ctx context.Context, results []*Result) {
	keys, err := r.Storage.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return // renewals report the storage's failure
	}
	for _, j := range results {
		if j.pair == nil || j.pair.Err != nil || j.Action != "" || j.Settings.Revoked != "" {
			continue
		}
		for _, k := range keys {
			if !strings.HasSuffix(k, "/"+j.Base+".json") {
				continue
			}
			data, err := r.Storage.Load(ctx, k)
			if err != nil {
				continue
			}
			if rec, leaf, err := storage.UnmarshalCertificateLeaf(k, data); err == nil && rec.Revoked != nil && leaf.Equal(j.pair.Chain[0]) {
				j.Settings.Revoked = rec.Revoked.Reason
			}
		}
	}
}

// storedKey is the storage key of the certificate p holds, or "" when
// storage does not hold it.
func storedKey(ctx context.Context, st storage.Storage, p *certfile.Pair) string {
	var found string
	match := func(k string) bool { return strings.HasSuffix(k, "/"+p.Base+".json") }
	_ = storage.EachCertificate(ctx, st, match, func(key string, _ []byte, rec *storage.Certificate, err error) bool {
		if err != nil {
			return true
		}
		if tc, err := rec.TLSCertificate(); err == nil && tc.Leaf.Equal(p.Chain[0]) {
			found = key
			return false
		}
		return true
	})
	return found
}

// scan reads the pairs (repairing those a killed run left mismatched) and
// adds the Want entries that have no files.
func (r *Renewer) scan(ctx context.Context) ([]*Result, error) {
	pairs, err := r.Dir.Pairs()
	if err != nil {
		return nil, err
	}
	var results []*Result
	have, wanted := map[string]bool{}, map[string]bool{}
	for _, names := range r.Want {
		if base, err := storage.NameSegment(names[0]); err == nil {
			wanted[base] = true
		}
	}
	for i := range pairs {
		p := &pairs[i]
		have[p.Base] = true
		if errors.Is(p.Err, certfile.ErrKeyMismatch) && !r.DryRun {
			r.repair(ctx, p)
		}
		j := &Result{Base: p.Base, pair: p}
		if p.Err != nil {
			j.Action, j.Detail = Unparsable, p.Err.Error()
		} else {
			j.Names = certfile.Names(p.Chain[0], p.Base)
			if r.loadSettings(j, len(r.Want) == 0 || wanted[p.Base]) && !wanted[p.Base] && selfSigned(p.Chain[0]) {
				j.Action, j.Detail = Skipped, "self-signed, and not issued by certkeeper (no renewal settings): left alone (name it in the want list, --want, to replace it)"
			}
		}
		results = append(results, j)
	}
	for _, names := range r.Want {
		base, err := storage.NameSegment(names[0])
		if err != nil {
			return nil, fmt.Errorf("wanted %s: %w", names[0], err)
		}
		if !have[base] {
			have[base] = true
			j, expired := r.fromStorage(ctx, base, names)
			if j == nil {
				j = &Result{Base: base, Names: names, due: true, Settings: r.Override, expired: expired}
			}
			results = append(results, j)
		}
	}
	if len(r.Only) > 0 {
		return only(results, r.Only, r.Dir)
	}
	return results, nil
}

// only keeps the results that cover or are named by one of names, and
// fails naming a name that none is.
func only(results []*Result, names []string, dir certfile.Dir) ([]*Result, error) {
	keep := map[*Result]bool{}
	for _, n := range names {
		if norm, err := (hostname.Normalizer{AllowIP: true, AllowWildcard: true}).Normalize(n); err == nil {
			n = norm // as the names of the results are: M.TEST is m.test
		}
		seg, _ := storage.NameSegment(n)
		found := false
		for _, j := range results {
			if j.Base == seg || slices.Contains(j.Names, n) {
				found, keep[j] = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("no certificate in %s is for %s (cert renew --dry-run lists them)", dir, n)
		}
	}
	return slices.DeleteFunc(results, func(j *Result) bool { return !keep[j] }), nil
}

// fromStorage writes the files of a Want entry that has none from the
// certificate storage holds for exactly its names, unexpired (one that
// certkeeper import brought in, or one whose files could not be written),
// with renewal settings naming its CA and account, so that it is not
// ordered again; nil when storage holds none. The Result then goes on as
// a pair's: renewed if due. In a DryRun it only says so (WouldWrite).
// Without an unexpired one, it returns the leaf of the newest expired
// one, if any, whose key type the new certificate takes.
func (r *Renewer) fromStorage(ctx context.Context, base string, names []string) (*Result, *x509.Certificate) {
	var best, expired *storage.Certificate
	match := func(k string) bool { // stored under its first name, which may be any of the entry's
		return slices.ContainsFunc(names, func(n string) bool {
			seg, err := storage.NameSegment(n)
			return err == nil && strings.HasSuffix(k, "/"+seg+".json")
		})
	}
	_ = storage.EachCertificate(ctx, r.Storage, match, func(_ string, _ []byte, rec *storage.Certificate, err error) bool {
		switch {
		case err != nil || !sameNames(rec.Names, names):
		case time.Now().Before(rec.NotAfter) && (best == nil || rec.NotAfter.After(best.NotAfter)):
			best = rec
		case !time.Now().Before(rec.NotAfter) && (expired == nil || rec.NotAfter.After(expired.NotAfter)):
			expired = rec
		}
		return true
	})
	if best == nil && expired != nil {
		leaf, _ := expired.Leaf()
		return nil, leaf
	}
	if best == nil {
		return nil, nil
	}
	if r.DryRun {
		return &Result{Base: base, Names: names, Action: WouldWrite, Settings: r.Override,
			Detail: "from storage (not_after " + best.NotAfter.UTC().Format(time.RFC3339) + "), no order"}, nil
	}
	s := Settings{CA: storedCA(ctx, r.Storage, best), Email: best.Email}
	if otherCA(best.Issuer, r.Override.CA) {
		from := cmp.Or(s.CA, best.Issuer)
		if best.Issuer != "local" {
			from += " (with its account there)"
		}
		r.progress(names[0], "the certificate in storage is from "+from+", not --ca "+r.Override.CA+
			": its renewals go to --ca, with an account of their own; if both are one CA, give --ca as "+cmp.Or(s.CA, "that CA's directory URL"))
	}
	s.Override(r.Override)
	paths, err := r.Dir.Write(names[0], best.KeyPEM, best.ChainPEM)
	if err == nil {
		err = SaveSettings(settingsPathBase(r.Dir, base), s)
	}
	j := &Result{Base: base, Names: names, Settings: s, Paths: paths, written: true}
	if err != nil {
		j.Action, j.Detail, j.Err = Failed, err.Error(), err
		return j, nil
	}
	key, chain, err := r.Dir.Read(names[0])
	if err != nil {
		j.Action, j.Detail, j.Err = Failed, err.Error(), err
		return j, nil
	}
	j.pair = &certfile.Pair{Base: base, Paths: paths, Key: key, Chain: chain}
	r.progress(names[0], "written from the certificate in storage (not_after "+best.NotAfter.UTC().Format(time.RFC3339)+"), without an order")
	return j, nil
}

// otherCA reports whether ca, a --ca given, is surely not the CA whose
// issuer ID is issuer: a directory URL with another ID, or the local CA
// for an ACME one and back (a migration trial's near miss, .../dir for
// .../directory, renewed from a new account at a CA that does not exist,
// in silence).
func otherCA(issuer, ca string) bool {
	switch {
	case ca == "local" || issuer == "local":
		return ca != "" && (ca == "local") != (issuer == "local")
	case strings.Contains(ca, "://"):
		return storage.IssuerID(ca) != issuer
	}
	return false // a CA name (letsencrypt, staging), or none
}

// sameNames reports whether a and b hold the same names, in any order.
func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, n := range b {
		if !slices.Contains(a, n) {
			return false
		}
	}
	return true
}

// storedCA is the CA a stored certificate's renewals go to, for its
// renewal settings: "local" for the local CA's, else the directory URL
// its account's record holds; "" when that cannot be read.
func storedCA(ctx context.Context, st storage.Storage, rec *storage.Certificate) string {
	if rec.Issuer == "local" {
		return "local"
	}
	key, err := storage.AccountKey(rec.Issuer, rec.Email)
	if err != nil {
		return ""
	}
	data, err := st.Load(ctx, key)
	if err != nil {
		return ""
	}
	var acct struct {
		Directory string `json:"directory"`
	}
	if json.Unmarshal(data, &acct) != nil {
		return ""
	}
	return acct.Directory
}

// repair restores a mismatched pair from storage, or notes why not in
// p.Err.
func (r *Renewer) repair(ctx context.Context, p *certfile.Pair) {
	rec, err := repairPair(ctx, r.Storage, r.Dir, p)
	if err != nil {
		p.Err = fmt.Errorf("%w; repair: %v", p.Err, err)
		return
	}
	key, kerr := rec.PrivateKey()
	tc, cerr := rec.TLSCertificate()
	if kerr == nil && cerr == nil {
		p.Key, p.Chain, p.Err = key, []*x509.Certificate{tc.Leaf}, nil
		r.progress(p.Base, "key and certificate did not match; restored both from storage")
	}
}

// loadSettings sets j.Settings: the pair's remembered settings, if any,
// with Override on top if override, and reports whether it has none.
// Settings that cannot be read fail the certificate: renewing it with
// other settings could switch its CA.
func (r *Renewer) loadSettings(j *Result, override bool) (none bool) {
	path := settingsPathBase(r.Dir, j.Base)
	s, err := LoadSettings(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.Action, j.Detail, j.Err = Failed, err.Error(), err
		return false
	}
	if err == nil {
		remembered := s
		j.remembered = &remembered
	}
	if override {
		s.Override(r.Override)
		j.overridden = true
	}
	j.Settings = s
	return err != nil
}

// selfSigned reports whether leaf signed itself: no CA issued it. (Not
// CheckSignatureFrom, which wants the signer to be a CA certificate.)
func selfSigned(leaf *x509.Certificate) bool {
	return bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
}

// renewDue renews every due certificate, grouped by the issuer their
// settings describe: each group's chain is set up at its first
// certificate and released after its last.
func (r *Renewer) renewDue(ctx context.Context, results []*Result) error {
	var order []string
	groups := map[string][]*Result{}
	for _, j := range results {
		if !j.due || j.Action != "" {
			continue
		}
		if r.DryRun {
			j.Action = WouldRenew
			continue
		}
		if j.Settings.Email == "" {
			// Renewal needs no configuration: the contact recorded when
			// the certificate was issued names the account.
			j.Settings.Email = recordedEmail(ctx, r.Storage, j.Names)
			j.storedEmail = j.Settings.Email != ""
		}
		if err := r.wildcardByDNS(j); err != nil {
			j.Action, j.Detail, j.Err = Failed, err.Error(), err
			continue
		}
		k := j.Settings.issuerKey()
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], j)
	}
	for _, k := range order {
		r.renewGroup(ctx, groups[k])
	}
	return nil
}

// wildcardByDNS makes a wildcard certificate's renewal validate through
// DNS, the only way a CA validates a wildcard: settings written before
// a DNS provider implied dns-01 (trial 19) say challenge http-01 or
// tls-alpn-01 beside the provider, which orders that could never be
// validated. With a provider, the renewal uses dns-01 (and remembers
// it); without one it fails before any order, saying what to set.
func (r *Renewer) wildcardByDNS(j *Result) error {
	s := &j.Settings
	switch {
	case s.CA == "local" || s.Challenge == "" || s.Challenge == "dns-01" || s.Challenge == "dns-persist-01":
		return nil
	case !slices.ContainsFunc(j.Names, func(n string) bool { return strings.HasPrefix(n, "*.") }):
		return nil
	case s.DNS != "":
		r.progress(j.Names[0], "a wildcard is validated through DNS only: renewing with dns-01 through "+s.DNS+" (its settings said challenge "+s.Challenge+")")
		s.Challenge = "dns-01"
		return nil
	}
	return fmt.Errorf("a wildcard certificate is validated through DNS only, and its renewal settings (%s) say challenge %s and name no DNS provider: set challenge = dns-01 and dns (with its settings), or issue it again with dns-01",
		settingsPathBase(r.Dir, j.Base), s.Challenge)
}

// renewGroup renews certificates that share one issuer chain.
func (r *Renewer) renewGroup(ctx context.Context, group []*Result) {
	var chain *issuer.Chain
	release := func() {}
	defer func() { release() }()
	var chainErr error
	for _, j := range group {
		if r.BeforeRenew != nil {
			if err := r.BeforeRenew(ctx, j); err != nil {
				j.Action, j.Detail, j.Err = Failed, err.Error(), err
				continue
			}
		}
		if err := r.missingPath(j); err != nil {
			j.Action, j.Detail, j.Err = Failed, err.Error(), err
			continue
		}
		if chain == nil && chainErr == nil {
			var rel func()
			chain, rel, chainErr = r.Issuers(ctx, j.Settings)
			if rel != nil {
				release = rel
			}
		}
		if chainErr != nil {
			j.Action, j.Detail, j.Err = Failed, chainErr.Error(), chainErr
			continue
		}
		if r.Check != nil {
			if err := r.Check(ctx, chain, j.Names); err != nil {
				err = fmt.Errorf("nothing was ordered: %w", err)
				j.Action, j.Detail, j.Err = Failed, err.Error(), err
				continue
			}
		}
		r.renewOne(ctx, chain, j)
	}
}

// missingPath fails j when a file or directory its remembered settings
// name (Settings.Paths), and this run did not give another of, is gone:
// said as remembered, in which file, with the flag that changes it. A DNS
// trial's cron line, which had no --tsig-key-file, read "--tsig-key-file:
// open …: no such file or directory".
func (r *Renewer) missingPath(j *Result) error {
	if j.remembered == nil {
		return nil
	}
	paths, remembered := j.Settings.Paths(), j.remembered.Paths()
	for _, key := range slices.Sorted(maps.Keys(paths)) {
		if remembered[key] != paths[key] {
			continue // this run's
		}
		if _, err := os.Stat(paths[key]); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s = %s, remembered in %s, does not exist: put it back, or give --%s to change it (remembered then)",
				key, paths[key], settingsPathBase(r.Dir, j.Base), FlagOf(key))
		}
	}
	return nil
}

// renewOne renews (or first issues) one certificate, writes its files and
// runs AfterRenew, recording the outcome in j.
func (r *Renewer) renewOne(ctx context.Context, chain *issuer.Chain, j *Result) {
	var key crypto.Signer
	var prev *x509.Certificate
	if j.pair != nil {
		prev, key = j.pair.Chain[0], j.pair.Key
	}
	if r.NewKey || j.Settings.Revoked == "keyCompromise" {
		key = nil
	}
	kt, err := issuer.ParseKeyType(j.Settings.KeyType)
	if err != nil {
		err = fmt.Errorf("key_type: %w", err)
		j.Action, j.Detail, j.Err = Failed, err.Error(), err
		return
	}
	if prev != nil && j.Settings.KeyType == "" {
		if t := issuer.KeyTypeOf(prev.PublicKey); t != "" {
			kt = t // a new key of the type the certificate had
		}
	}
	if key != nil && j.Settings.KeyType != "" && issuer.KeyTypeOf(key.Public()) != kt {
		key = nil // key_type asks for another type than the kept key's: a new key of it
	}
	if j.pair == nil && j.expired != nil && j.Settings.KeyType == "" {
		if t := issuer.KeyTypeOf(j.expired.PublicKey); t != "" {
			kt = t // as the expired one's: a migration trial's RSA certificate became ECDSA
		}
	}
	switch {
	case j.pair == nil && j.expired != nil:
		r.progress(j.Names[0], "no files, and storage's certificate expired "+j.expired.NotAfter.UTC().Format(time.RFC3339)+": ordering a new "+string(kt)+" certificate from "+cmp.Or(j.Settings.CA, "the default CA (Let's Encrypt; --ca names another)"))
	case j.pair == nil: // a Want entry: nothing of it in the directory or storage
		r.progress(j.Names[0], "no files, none in storage: ordering a new certificate from "+cmp.Or(j.Settings.CA, "the default CA (Let's Encrypt; --ca names another)"))
	}
	got, err := certkeeper.Issue(ctx, r.Storage, certkeeper.IssueRequest{
		Names: j.Names, Issuers: chain, Key: key, KeyType: kt, Replaces: prev, Email: j.Settings.Email, Files: true,
		Progress: func(s string) { r.progress(j.Names[0], s) },
	})
	// Issued, and storage refused it (full): the files still get it; the
	// run fails below, naming the storage.
	var unstored *certkeeper.UnstoredError
	if errors.As(err, &unstored) {
		got, err = unstored.Issued, nil
	}
	if err == nil {
		j.key = got.Key
		err = r.markDeployPending(j)
	}
	if err == nil {
		j.Paths, err = r.Dir.WriteKeepOld(j.Names[0], got.Record.KeyPEM, got.Certificate.ChainPEM)
	}
	if err == nil {
		// Remembered once the certificate is renewed with them, as
		// certbot does: a failed override is not kept. The revoked
		// certificate is replaced.
		j.Settings.Revoked = ""
		err = SaveSettings(settingsPathBase(r.Dir, j.Base), j.toRemember())
	}
	if err != nil {
		j.Action, j.Detail, j.Err = Failed, err.Error(), err
		return
	}
	j.Action, j.NotAfter = Renewed, got.Certificate.Leaf.NotAfter
	if j.pair == nil {
		j.Action = Issued
	}
	why := j.Detail
	j.Detail = "not_after " + j.NotAfter.UTC().Format(time.RFC3339)
	if strings.HasPrefix(why, earlyWindow) { // the operator's "why now?", with the CA's explanation
		j.Detail += "; " + why
	}
	r.afterRenew(ctx, j)
	if unstored != nil {
		j.Action, j.Detail, j.Err = Failed, fmt.Sprintf("%s (%s, files written), but %v", j.Action, j.Detail, unstored), unstored
	}
	if j.remembered != nil { // a flag of this run changed them: say so
		before := *j.remembered
		before.Revoked = "" // replaced, as said already
		if changes := (&Previous{Names: j.Names, Settings: before}).Changes(j.Names, j.toRemember()); changes != "" {
			r.progress(j.Names[0], changes+" (remembered for its next renewals)")
		}
	}
}

// afterRenew runs AfterRenew (the hooks) for j, renewed, and clears its
// deploy's pending mark once they succeed. A failure fails j, whose files
// are the new ones all the same; a deploy hook given for this run that
// fails is not remembered (the one before it stays), and the deploy stays
// pending: the next run given a deploy hook (this one fixed) runs it.
func (r *Renewer) afterRenew(ctx context.Context, j *Result) {
	if r.AfterRenew == nil {
		return
	}
	err := r.AfterRenew(ctx, j)
	if err == nil {
		err = r.deployDone(j)
	}
	if err == nil {
		return
	}
	j.Action, j.Detail, j.Err = Failed, fmt.Sprintf("%s (%s), but %v", j.Action, j.Detail, err), err
	if j.remembered != nil && j.remembered.DeployHook != j.Settings.DeployHook {
		j.Settings.DeployHook = j.remembered.DeployHook
		if err := SaveSettings(settingsPathBase(r.Dir, j.Base), j.toRemember()); err != nil {
			j.Detail += "; and restoring the deploy hook before it: " + err.Error()
		}
		j.Detail += "; the deploy hook is not remembered, as it failed: fix it and give --deploy-hook again (the next run deploys these files with it)"
	}
}

func (r *Renewer) progress(name, step string) {
	if r.Progress != nil {
		r.Progress(name, step)
	}
}

// recordedEmail returns the contact email stored with the certificate for
// names (under any issuer), or "".
func recordedEmail(ctx context.Context, st storage.Storage, names []string) string {
	if len(names) == 0 {
		return ""
	}
	seg, err := storage.NameSegment(names[0])
	if err != nil {
		return ""
	}
	var email string
	match := func(k string) bool { return strings.HasSuffix(k, "/"+seg+".json") }
	_ = storage.EachCertificate(ctx, st, match, func(_ string, _ []byte, rec *storage.Certificate, err error) bool {
		if err == nil && rec.Email != "" {
			email = rec.Email
			return false
		}
		return true
	})
	return email
}
