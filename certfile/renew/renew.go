// Package renew renews certificate files: the key/certificate pairs of a
// certfile.Dir, for servers that read certificates from disk. It is what
// `certkeeper cert renew` runs, importable by any Go program:
//
//	r := &renew.Renewer{Dir: certfile.Dir("/etc/ssl"), Storage: st, Issuers: chain}
//	results, err := r.Run(ctx)
//
// A pair is due by the Manager's rule (the CA's ARI window when it offers
// one, else when a third of the lifetime is left, half under 10 days), by
// a grace period, or always with Force. Certificates are issued and stored
// through certkeeper.Issue (the one issuance path) before their files are
// written, so a run killed between the key file and the certificate file
// leaves a pair the next run repairs from storage. Runs on one directory
// are serialised by a lock in Storage.
package renew

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certfile"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// Action is what a run did with one certificate.
type Action string

// The actions of a Result.
const (
	Renewed    Action = "renewed"     // a pair was renewed
	Issued     Action = "issued"      // a Want entry without files was issued
	NotDue     Action = "not due"     // left alone
	WouldRenew Action = "would renew" // due, in a DryRun
	Failed     Action = "failed"      // renewal (or AfterRenew) failed; Detail says why
	Unparsable Action = "unparsable"  // the pair could not be read; left alone
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

	pair *certfile.Pair // nil for a Want entry with no files yet
	due  bool
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

	// Issuers returns the issuer chain to renew with. It is called once,
	// when the first certificate is due (so a challenge listener starts
	// only then), with the contact email the run uses: Email, or else
	// the one recorded with that certificate.
	Issuers func(ctx context.Context, email string) (*issuer.Chain, error)

	// ARI, if set, is asked for the CA's renewal window of each
	// certificate; nil uses the lifetime rule alone.
	ARI RenewalInfoer

	// Email is the ACME contact recorded with new certificates. Empty
	// uses the one recorded when the certificate was first issued.
	Email string

	// KeyType is the type of new keys: for Want entries, with NewKey, and
	// for pairs whose key cannot be reused. Empty means ECDSA P-256, the
	// default; with the default, a renewal keeps the type of the
	// certificate it replaces.
	KeyType issuer.KeyType

	// NewKey gives renewed certificates a new key; by default a renewal
	// keeps its key.
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

	// BeforeFirst, if set, runs once before the first renewal of a run;
	// an error stops the run with nothing renewed.
	BeforeFirst func(ctx context.Context) error

	// AfterRenew, if set, runs after each certificate renewed or issued;
	// an error marks that certificate Failed.
	AfterRenew func(ctx context.Context, r *Result) error

	// Progress, if set, receives steps for a certificate: the issuer's,
	// and a pair repaired from storage.
	Progress func(name, step string)
}

// Run renews what is due and returns one Result per pair and Want entry,
// pairs first. Failures of single certificates are in their Result; the
// error is for the run as a whole (lock, directory, issuer setup,
// BeforeFirst).
func (r *Renewer) Run(ctx context.Context) ([]*Result, error) {
	abs, _ := filepath.Abs(string(r.Dir))
	sum := sha256.Sum256([]byte(abs))
	unlock, err := r.Storage.Lock(ctx, "certfile/"+hex.EncodeToString(sum[:8]))
	if err != nil {
		return nil, fmt.Errorf("locking %s against another renew run: %w", r.Dir, err)
	}
	defer unlock()
	results, err := r.scan(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	for _, j := range results {
		if j.pair != nil && j.Action == "" {
			j.due, j.Detail = r.isDue(ctx, j.pair.Chain[0], now)
			if !j.due {
				j.Action = NotDue
			}
		}
	}
	return results, r.renewDue(ctx, results)
}

// scan reads the pairs (repairing those a killed run left mismatched) and
// adds the Want entries that have no files.
func (r *Renewer) scan(ctx context.Context) ([]*Result, error) {
	pairs, err := r.Dir.Pairs()
	if err != nil {
		return nil, err
	}
	var results []*Result
	have := map[string]bool{}
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
			results = append(results, &Result{Base: base, Names: names, due: true})
		}
	}
	return results, nil
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

// renewDue renews every due certificate, setting up the issuers and
// running BeforeFirst at the first.
func (r *Renewer) renewDue(ctx context.Context, results []*Result) error {
	var chain *issuer.Chain
	email := r.Email
	for _, j := range results {
		if !j.due || j.Action != "" {
			continue
		}
		if r.DryRun {
			j.Action = WouldRenew
			continue
		}
		if email == "" {
			// Renewal needs no configuration: the contact recorded when
			// the certificate was issued names the account.
			email = recordedEmail(ctx, r.Storage, j.Names)
		}
		if chain == nil {
			var err error
			if chain, err = r.Issuers(ctx, email); err != nil {
				return err
			}
			if r.BeforeFirst != nil {
				if err := r.BeforeFirst(ctx); err != nil {
					return err
				}
			}
		}
		r.renewOne(ctx, chain, email, j)
	}
	return nil
}

// renewOne renews (or first issues) one certificate, writes its files and
// runs AfterRenew, recording the outcome in j.
func (r *Renewer) renewOne(ctx context.Context, chain *issuer.Chain, email string, j *Result) {
	var key crypto.Signer
	var prev *x509.Certificate
	if j.pair != nil {
		prev, key = j.pair.Chain[0], j.pair.Key
	}
	if r.NewKey {
		key = nil
	}
	kt := r.KeyType
	if kt == "" {
		kt = issuer.ECDSAP256
	}
	if prev != nil && kt == issuer.ECDSAP256 {
		if t := issuer.KeyTypeOf(prev.PublicKey); t != "" {
			kt = t // a new key of the type the certificate had
		}
	}
	got, err := certkeeper.Issue(ctx, r.Storage, certkeeper.IssueRequest{
		Names: j.Names, Issuers: chain, Key: key, KeyType: kt, Replaces: prev, Email: email,
		Progress: func(s string) { r.progress(j.Names[0], s) },
	})
	if err == nil {
		j.Paths, err = r.Dir.WriteKeepOld(j.Names[0], got.Record.KeyPEM, got.Certificate.ChainPEM)
	}
	if err != nil {
		j.Action, j.Detail, j.Err = Failed, err.Error(), err
		return
	}
	j.Action, j.NotAfter = Renewed, got.Certificate.Leaf.NotAfter
	if j.pair == nil {
		j.Action = Issued
	}
	j.Detail = "not_after " + j.NotAfter.UTC().Format(time.RFC3339)
	if r.AfterRenew != nil {
		if err := r.AfterRenew(ctx, j); err != nil {
			j.Action, j.Detail, j.Err = Failed, err.Error(), err
		}
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
	keys, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return ""
	}
	for _, k := range keys {
		if !strings.HasSuffix(k, "/"+seg+".json") {
			continue
		}
		if data, err := st.Load(ctx, k); err == nil {
			if rec, err := storage.UnmarshalCertificate(k, data); err == nil && rec.Email != "" {
				return rec.Email
			}
		}
	}
	return ""
}
