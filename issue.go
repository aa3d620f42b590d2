package certkeeper

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

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

	// Email is the ACME contact, recorded so renewal needs no
	// configuration.
	Email string

	// Variant and OnDemand are recorded as given (see storage.Certificate).
	Variant  string
	OnDemand bool

	// Progress, if set, receives the issuer's steps (issuer.Request).
	Progress func(step string)
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
func Issue(ctx context.Context, st storage.Storage, req IssueRequest) (*Issued, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("certkeeper: Issue needs at least one name")
	}
	if req.Issuers == nil {
		return nil, errors.New("certkeeper: Issue needs an issuer chain")
	}
	key, csr := req.Key, req.CSR
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
	email := req.Email
	if r := req.ReplacesRecord; r != nil {
		ireq.ReplacesAccount = r.Account
	}
	cert, err := req.Issuers.Issue(ctx, ireq)
	if err != nil {
		return nil, err
	}
	if r := req.ReplacesRecord; r != nil && r.Account != "" && cert.Account == r.Account {
		email = r.Email // ordered from the account that ordered Replaces
	}
	timeline.Mark(ctx, "issued_check")
	rec := &storage.Certificate{
		Names: req.Names, Issuer: cert.Issuer, ChainPEM: cert.ChainPEM,
		NotBefore: cert.Leaf.NotBefore, NotAfter: cert.Leaf.NotAfter,
		KeyType: string(issuer.KeyTypeOf(cert.Leaf.PublicKey)),
		Profile: cert.Profile, URL: cert.URL, Account: cert.Account, Email: email,
		Variant: req.Variant, OnDemand: req.OnDemand, Obtained: time.Now().UTC(),
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
	if err := st.Store(ctx, got.Key, data); err != nil {
		return nil, &UnstoredError{Issued: got, Data: data, Err: err}
	}
	timeline.Mark(ctx, "store")
	return got, nil
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
}

// Error names the certificate and the storage's error.
func (e *UnstoredError) Error() string {
	return fmt.Sprintf("storing the certificate for %s (issued, but not kept): %v", e.Issued.Record.Names[0], e.Err)
}

// Unwrap returns the storage's error.
func (e *UnstoredError) Unwrap() error { return e.Err }
