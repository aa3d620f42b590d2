package certkeeper

import (
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/internal/timeline"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
)

// IssueRequest is one certificate for Issue to obtain and store.
type IssueRequest struct {
	// Names are the normalised names, the first being the primary name
	// (it names the stored record).
	Names []string

	// Issuers is the fallback chain asked for the certificate.
	Issuers *issuer.Chain

	// Key is the certificate's key (a renewal that keeps its key). Nil
	// makes a new key of KeyType.
	Key crypto.Signer

	// KeyType is the type of a new key. Empty means ECDSA P-256.
	KeyType issuer.KeyType

	// CSR, if set, is the caller's own DER certificate request, signed by
	// a key the caller keeps: the certificate is returned and nothing is
	// stored, as there is no key to store. Key and KeyType are ignored.
	CSR []byte

	// Replaces is the certificate this one renews, if any (ACME ARI).
	Replaces *x509.Certificate
	// ReplacesRecord is the stored record of Replaces, if known: the
	// renewal is ordered from its account when the issuer's storage holds
	// it (issuer.Request.ReplacesAccount), and then records its Email.
	ReplacesRecord *storage.Certificate

	// Email is recorded for a certificate whose issuer names no ACME
	// account; an ACME issuer's certificate records the email of the
	// account that ordered it (issuer.Certificate.Email), so that a
	// renewal or revocation uses that account with no configuration.
	Email string

	// Variant, OnDemand and Files are recorded as given (see
	// storage.Certificate).
	Variant  string
	OnDemand bool
	Files    bool

	// Progress, if set, receives the issuer's steps (issuer.Request).
	Progress func(step string)

	// NextARICheck, if set, is when the renewal window the CA gave with
	// the certificate (issuer.Certificate.RenewalWindow) is to be asked
	// again, given when it was given and the CA's Retry-After; nil means
	// twice a day (renewal.NextARICheck). The window is kept in the
	// record with that next check (storage.Window.NextCheck): no Manager
	// sharing the storage asks the CA for it before then.
	NextARICheck func(now, retryAfter time.Time) time.Time
}

// Issued is a certificate Issue obtained.
type Issued struct {
	// Record is the stored record (for a CSR: the record that would have
	// been stored, without a key).
	Record *storage.Certificate
	// Key is the storage key Record is stored under; empty for a CSR.
	Key string
	// Certificate is what the issuer returned.
	Certificate *issuer.Certificate
}

// Issue obtains a certificate for req.Names through req.Issuers and
// stores it in st under the issuer that signed it. It is certkeeper's one
// issuance path: the Manager's first issue and renewals, and the CLI's
// cert issue and cert renew all call it, so a stored record is the same
// whichever path made it. Its KeyType is the type of the key actually
// used.
//
// st may be nil when req.CSR is set. It takes no lock and makes no policy decision: the caller has done that.
// The record is stored before Issue returns, so a caller that crashes
// after it loses nothing. A certificate issued and then not stored (a
// full disk) is returned inside a *UnstoredError, so that the caller
// can still use it and store it later rather than order it again.
//
// With a storage and no CSR, an ACME order about to be finalized is kept
// with the new key under storage.PendingOrderKey until the certificate is
// stored: if the process dies in between, the next Issue for the same
// names takes the certificate from that order (issuer.Request.Resume)
// rather than order it again and spend the CA's duplicate-certificate
// limit.
func Issue(ctx context.Context, st storage.Storage, req IssueRequest) (*Issued, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("certkeeper: Issue needs at least one name")
	}
	if req.Issuers == nil {
		return nil, errors.New("certkeeper: Issue needs an issuer chain")
	}
	key, csr := req.Key, req.CSR
	var pending *pendingOrder
	if csr == nil && st != nil {
		var err error
		if pending, err = loadPending(ctx, st, req); err != nil {
			return nil, err
		}
		if pending.resume != nil {
			key = pending.key
		}
	}
	if csr == nil {
		if key == nil {
			kt := req.KeyType
			if kt == "" {
				kt = issuer.ECDSAP256
			}
			var err error
			if key, err = kt.Generate(); err != nil {
				return nil, fmt.Errorf("generating %s key: %w", kt, err)
			}
		}
		var err error
		if csr, err = issuer.NewCSR(key, req.Names); err != nil {
			return nil, err
		}
		timeline.Mark(ctx, "key_csr")
	}
	ireq := issuer.Request{Names: req.Names, CSR: csr, Replaces: req.Replaces, Progress: req.Progress}
	if pending != nil {
		ireq.Resume = pending.resume
		ireq.Finalizing = func(o issuer.Order) { pending.store(ctx, st, o, key) }
	}
	if r := req.ReplacesRecord; r != nil {
		ireq.ReplacesAccount = r.Account
	}
	cert, err := req.Issuers.Issue(ctx, ireq)
	if err != nil {
		return nil, err
	}
	email := req.Email
	if cert.Account != "" {
		email = cert.Email // the ordering account's: the Manager's Email or another
	}
	timeline.Mark(ctx, "issued_check")
	rec := &storage.Certificate{
		Names: req.Names, Issuer: cert.Issuer, ChainPEM: cert.ChainPEM,
		NotBefore: cert.Leaf.NotBefore, NotAfter: cert.Leaf.NotAfter,
		KeyType: string(issuer.KeyTypeOf(cert.Leaf.PublicKey)),
		Profile: cert.Profile, URL: cert.URL, Account: cert.Account, Email: email,
		Variant: req.Variant, OnDemand: req.OnDemand, Files: req.Files, Obtained: time.Now().UTC(),
		RenewalWindow: issuedWindow(cert.RenewalWindow, req.NextARICheck),
	}
	got := &Issued{Record: rec, Certificate: cert}
	if req.CSR != nil {
		return got, nil
	}
	if rec.KeyPEM, err = storage.MarshalPrivateKeyPEM(key); err != nil {
		return nil, err
	}
	data, err := storage.MarshalCertificate(rec)
	if err != nil {
		return nil, err
	}
	if got.Key, err = storage.CertificateKeyVariant(cert.Issuer, req.Names[0], req.Variant); err != nil {
		return nil, err
	}
	// The CA signed it: it is stored even if ctx ended as it arrived (a
	// stop, or a deadline spent on a slow download), within storeGrace.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeGrace)
	defer cancel()
	if err := st.Store(sctx, got.Key, data); err != nil {
		// The pending order stays: if this process dies before it stores
		// the certificate, the next attempt fetches it again.
		return nil, &UnstoredError{Issued: got, Data: data, Err: err, pending: pending}
	}
	timeline.Mark(ctx, "store")
	pending.done(sctx, st)
	return got, nil
}

// windowOver reports whether w, the renewal window a CA gave with a
// certificate it has just issued, had ended at now. Such a window is not
// advice about that certificate (a CA replacing the certificates it issued
// earlier, or one misconfigured), and renewing at once would loop: the
// record does not keep it, the certificate is renewed by its lifetime, and
// the CA is asked again at its next check. (A window that has begun, as
// Pebble's does at issuance for a certificate of minutes, is kept.)
func windowOver(w *issuer.Window, now time.Time) bool {
	return w != nil && w.End.After(w.Start) && !w.End.After(now)
}

// storeGrace bounds the storing of a certificate the CA has signed, which
// outlives the issuance's context: a trial's CA took the issuance's whole
// deadline to answer a download, and the certificate it had signed, once
// there, was refused by storage for the deadline, and ordered again.
const storeGrace = 10 * time.Second

// issuedWindow is the record's renewal window for the one the CA gave with
// a new certificate (w, nil if none), checked again at next's time. A
// window already over is not kept (windowOver).
func issuedWindow(w *issuer.Window, next func(now, retryAfter time.Time) time.Time) *storage.Window {
	if w == nil || !w.End.After(w.Start) || windowOver(w, time.Now()) {
		return nil
	}
	if next == nil {
		next = func(now, retryAfter time.Time) time.Time {
			return renewal.NextARICheck(now, retryAfter, time.Time{}, nil)
		}
	}
	return &storage.Window{Start: w.Start.UTC(), End: w.End.UTC(), NextCheck: next(time.Now(), w.RetryAfter).UTC(), ExplanationURL: w.ExplanationURL}
}

// pendingMaxAge is how old a pending order may be and still be resumed: a
// crash loop resumes within minutes, and an older one is more likely a
// leftover than a certificate still worth fetching.
const pendingMaxAge = 24 * time.Hour

// pendingPrefix is the List prefix of every storage.PendingOrderKey.
const pendingPrefix = "pending/"

// resumable reports whether data, a pending order's record, is recent
// enough (pendingMaxAge) to be resumed at now.
func resumable(data []byte, now time.Time) bool {
	var rec pendingOrder
	return json.Unmarshal(data, &rec) == nil && rec.Order.URL != "" && now.Sub(rec.Created) <= pendingMaxAge
}

// pendingOrder is the record under storage.PendingOrderKey: an ACME order
// Issue is finalizing, with the key of its CSR, stored before the CA is
// asked to sign. If the process dies before the certificate is stored, the
// next Issue for the same names resumes the order (issuer.Request.Resume)
// rather than order, and pay for, the certificate again.
type pendingOrder struct {
	Names   []string     `json:"names"`
	Order   issuer.Order `json:"order"`
	KeyPEM  []byte       `json:"key_pem"`
	Created time.Time    `json:"created"`

	storageKey string
	resume     *issuer.Order // the stored order, if it may be resumed
	key        crypto.Signer // its key
	stored     bool          // whether storageKey holds a record to delete
}

// loadPending reads the pending order of req's certificate. The result is
// never nil: its resume is set when the stored order is one req may
// resume (same names, a key of the type asked for, not too old).
func loadPending(ctx context.Context, st storage.Storage, req IssueRequest) (*pendingOrder, error) {
	k, err := storage.PendingOrderKey(req.Names[0], req.Variant)
	if err != nil {
		return nil, err
	}
	p := &pendingOrder{Names: req.Names, storageKey: k}
	data, err := st.Load(ctx, k)
	if err != nil {
		// Nothing pending (the usual case), or nothing readable: either
		// way this attempt orders, and its own record replaces the old.
		p.stored = !errors.Is(err, fs.ErrNotExist)
		return p, nil
	}
	p.stored = true
	var rec pendingOrder
	if !resumable(data, time.Now()) || json.Unmarshal(data, &rec) != nil || !slices.Equal(rec.Names, req.Names) {
		return p, nil
	}
	key, err := storage.ParsePrivateKeyPEM(rec.KeyPEM)
	if err != nil {
		return p, nil
	}
	switch {
	case req.Key != nil:
		if !publicKeysEqual(key.Public(), req.Key.Public()) {
			return p, nil
		}
	case issuer.KeyTypeOf(key.Public()) != cmp.Or(req.KeyType, issuer.ECDSAP256):
		return p, nil
	}
	p.resume, p.key = &rec.Order, key
	return p, nil
}

// publicKeysEqual reports whether a and b are the same public key.
func publicKeysEqual(a, b crypto.PublicKey) bool {
	ae, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ae.Equal(b)
}

// store records o, about to be finalized with key. A failure to store is
// not an error: the issuance goes on, only without the means to resume.
func (p *pendingOrder) store(ctx context.Context, st storage.Storage, o issuer.Order, key crypto.Signer) {
	if p.resume != nil && *p.resume == o {
		return // the resumed order, stored already
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		return
	}
	rec := pendingOrder{Names: p.Names, Order: o, KeyPEM: keyPEM, Created: time.Now().UTC()}
	data, err := json.Marshal(rec)
	if err != nil {
		return
	}
	// Not made durable (storage.VolatileStorer): a process killed or
	// crashed leaves it in the page cache, which is what it is for; after
	// a power loss the order is placed again, as without it. That keeps
	// the two fsyncs of a durable write off a first handshake's path.
	store := st.Store
	if v, ok := st.(storage.VolatileStorer); ok {
		store = v.StoreVolatile
	}
	if store(ctx, p.storageKey, data) == nil {
		p.stored = true
	}
}

// done deletes the pending order once the certificate is stored. A record
// left behind (the delete failed) is harmless: it is resumed only for the
// same names, within pendingMaxAge, and not for a certificate older than
// the one a renewal replaces.
func (p *pendingOrder) done(ctx context.Context, st storage.Storage) {
	if p != nil && p.stored {
		_ = st.Delete(ctx, p.storageKey)
	}
}

// UnstoredError is Issue's error for a certificate the CA issued that
// could not be stored (a full disk, a storage outage). Issued and Data
// (the record as it was to be stored under Issued.Key) let the caller
// serve it and store it later: ordering it again would spend the CA's
// limits on a certificate already at hand.
type UnstoredError struct {
	Issued *Issued
	Data   []byte
	Err    error // the storage's error

	pending *pendingOrder // the order kept until the certificate is stored
}

// Store stores the certificate in st under Issued.Key, as Issue would
// have, and then deletes the order Issue kept for a process that dies
// before it stores it (storage.PendingOrderKey).
func (e *UnstoredError) Store(ctx context.Context, st storage.Storage) error {
	if err := st.Store(ctx, e.Issued.Key, e.Data); err != nil {
		return err
	}
	e.pending.done(ctx, st)
	return nil
}

// Error names the certificate and the storage's error.
func (e *UnstoredError) Error() string {
	return fmt.Sprintf("storing the certificate for %s (issued, but not kept): %v", e.Issued.Record.Names[0], e.Err)
}

// Unwrap returns the storage's error.
func (e *UnstoredError) Unwrap() error { return e.Err }
