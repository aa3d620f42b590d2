package certkeeper

import (
	"cmp"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/mholt/acmez/v3/acme"
)

// Revoking a certificate that a Manager serves: the certificate is revoked
// at its CA and its record marked (storage.Certificate.Revoked); every
// Manager sharing the storage then replaces it with a new key, at its next
// check of storage (Cluster.SyncInterval) or at once through a
// storage.Notifier. The revoking process need not be the serving one:
// "certkeeper cert revoke -d NAME" revokes what a running proxy or server
// holds.

// Revoker revokes a certificate at its CA (RFC 8555 §7.6): signed by
// certKey when it is given, else by the ACME account. *acmeca.Issuer is
// one.
type Revoker interface {
	Revoke(ctx context.Context, cert *x509.Certificate, certKey crypto.Signer, reason int) error
}

// RevokeRequest says which stored certificates RevokeStored revokes, and
// why.
type RevokeRequest struct {
	// Name is the primary name of the certificates (the first name they
	// were obtained for): its default certificate and each variant (such
	// as the RSA one) are revoked.
	Name string

	// IssuerID is the issuer they are stored under
	// (storage.IssuerID of the CA's directory URL).
	IssuerID string

	// Reason is the RFC 5280 reason, by name or code
	// (acmeca.RevocationReason); empty means unspecified. For
	// keyCompromise the request is signed by the certificate's own key,
	// as CAs want for it; otherwise by the account that ordered the
	// certificate.
	Reason string

	// Revoker returns what revokes at the CA, given the contact email
	// of the account that ordered the certificate (storage.Certificate.Email).
	Revoker func(email string) (Revoker, error)
}

// RevokedCert is one certificate RevokeStored revoked.
type RevokedCert struct {
	// Key is its storage key.
	Key string
	// Leaf is the revoked certificate.
	Leaf *x509.Certificate
	// Replaced is set when the record was renewed between the revocation
	// and the mark: the stored certificate is already another one, which
	// is not marked.
	Replaced bool
	// Already is set when the CA had revoked it before (a repeated run):
	// a mark already in the record keeps its reason, as the CA does.
	Already bool
}

// NotStoredError is RevokeStored's error when no certificate of the name
// is stored under the issuer. Elsewhere lists the CAs whose certificates
// of the name storage does hold (their directory URLs, as their accounts
// in storage give them; else their issuer IDs), so the caller can name
// the CA to give.
type NotStoredError struct {
	Name, IssuerID string
	Elsewhere      []string
}

func (e *NotStoredError) Error() string {
	if len(e.Elsewhere) > 0 {
		return fmt.Sprintf("no certificate of %s is stored from %s, but storage holds one from %s", e.Name, e.IssuerID, strings.Join(e.Elsewhere, " and "))
	}
	return fmt.Sprintf("no certificate of %s is stored", e.Name)
}

// RevokeStored revokes the certificates of req.Name stored in st under
// req.IssuerID at their CA, and marks their records revoked so that every
// Manager using st replaces them with a new key. A certificate the CA had
// revoked already counts as revoked (RevokedCert.Already), so a run that
// failed halfway can be repeated. It returns what it revoked,
// or, if nothing could be, the first error.
func RevokeStored(ctx context.Context, st storage.Storage, req RevokeRequest) ([]RevokedCert, error) {
	reason := req.Reason
	if reason == "" {
		reason = "unspecified"
	}
	code, reasonName, ok := acmeca.RevocationReason(reason)
	if !ok {
		return nil, fmt.Errorf("revocation reason %q: use one of %s, or its RFC 5280 code", req.Reason, acmeca.RevocationReasons())
	}
	keys, err := storedKeys(ctx, st, req.Name, req.IssuerID)
	if err != nil {
		return nil, err
	}
	var done []RevokedCert
	revokers := map[string]Revoker{}
	for _, key := range keys {
		r, err := revokeOne(ctx, st, key, code, reasonName, func(email string) (Revoker, error) {
			if rv, ok := revokers[email]; ok {
				return rv, nil
			}
			rv, err := req.Revoker(email)
			if err == nil {
				revokers[email] = rv
			}
			return rv, err
		})
		if err != nil {
			if len(done) > 0 {
				return done, err
			}
			return nil, err
		}
		done = append(done, *r)
	}
	return done, nil
}

// storedKeys lists the keys of name's certificates stored under
// issuerID, default first, or returns a *NotStoredError.
func storedKeys(ctx context.Context, st storage.Storage, name, issuerID string) ([]string, error) {
	seg, err := storage.NameSegment(name)
	if err != nil {
		return nil, err
	}
	all, err := st.List(ctx, storage.CertificatePrefix(""))
	if err != nil {
		return nil, fmt.Errorf("listing certificates: %w", err)
	}
	var keys, elsewhere []string
	for _, key := range all {
		iss, file, ok := strings.Cut(strings.TrimPrefix(key, storage.CertificatePrefix("")), "/")
		base := strings.TrimSuffix(file, ".json")
		if !ok || base != seg && !strings.HasPrefix(base, seg+"_") {
			continue
		}
		if iss == issuerID {
			keys = append(keys, key)
		} else if dir := directoryOf(ctx, st, iss); !slices.Contains(elsewhere, dir) {
			elsewhere = append(elsewhere, dir)
		}
	}
	if len(keys) == 0 {
		return nil, &NotStoredError{Name: name, IssuerID: issuerID, Elsewhere: elsewhere}
	}
	slices.SortFunc(keys, func(a, b string) int { return len(a) - len(b) }) // the default (no _variant) first
	return keys, nil
}

// directoryOf is the ACME directory URL of the issuer with this ID, as an
// account record of it in st says, or the ID when none does.
func directoryOf(ctx context.Context, st storage.Storage, issuerID string) string {
	keys, _ := st.List(ctx, "accounts/"+issuerID+"/")
	for _, k := range keys {
		var acct struct {
			Directory string `json:"directory"`
		}
		if data, err := st.Load(ctx, k); err == nil && strings.HasSuffix(k, ".json") && json.Unmarshal(data, &acct) == nil && acct.Directory != "" {
			return acct.Directory
		}
	}
	return issuerID
}

// revokeOne revokes the certificate under key and marks its record.
func revokeOne(ctx context.Context, st storage.Storage, key string, code int, reasonName string, revoker func(email string) (Revoker, error)) (*RevokedCert, error) {
	data, err := st.Load(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", key, err)
	}
	rec, leaf, err := storage.UnmarshalCertificateLeaf(key, data)
	if err != nil {
		return nil, err
	}
	var certKey crypto.Signer
	if code == 1 { // keyCompromise: prove it with the key
		if certKey, err = rec.PrivateKey(); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	rv, err := revoker(rec.Email)
	if err != nil {
		return nil, err
	}
	err = rv.Revoke(ctx, leaf, certKey, code)
	already := alreadyRevoked(err)
	if err != nil && !already {
		var p acme.Problem
		if certKey == nil && errors.As(err, &p) && p.Type == acme.ProblemTypeUnauthorized {
			return nil, fmt.Errorf("%w: the CA takes revocations from the account that ordered the certificate (%s), or, for keyCompromise, "+
				"signed with its own key: the account is not this one", err, cmp.Or(rec.Email, "no email"))
		}
		return nil, err
	}
	replaced, err := markRevoked(ctx, st, key, rec.Names[0], leaf, reasonName)
	if err != nil {
		return nil, fmt.Errorf("revoked %s (serial %s), but its record could not be marked, so a Manager serving it does not replace it early: %w",
			key, leaf.SerialNumber.Text(16), err)
	}
	return &RevokedCert{Key: key, Leaf: leaf, Replaced: replaced, Already: already}, nil
}

// MarkRevoked marks the record in st that holds leaf, stored under
// issuerID, revoked for reason (an RFC 5280 reason's name), for a
// certificate revoked by other means than RevokeStored (such as "cert
// revoke --cert FILE" of a certificate cert issue also stored): Managers
// using st replace it, and status shows it. It reports whether st holds
// leaf.
func MarkRevoked(ctx context.Context, st storage.Storage, issuerID string, leaf *x509.Certificate, reason string) (bool, error) {
	key, rec, ok := findStored(ctx, st, issuerID, leaf)
	if !ok {
		return false, nil
	}
	_, err := markRevoked(ctx, st, key, rec.Names[0], leaf, reason)
	return true, err
}

// KeepRenewalWindow stores in the record in st that holds leaf, stored
// under issuerID, the renewal window its CA suggested (ACME Renewal
// Information, RFC 9773), when it differs from the one there, so that
// status plans the renewal from it as a Manager keeps the windows it asks
// for (cert renew keeps those of cert issue's certificates with it). It
// reports whether st holds leaf.
func KeepRenewalWindow(ctx context.Context, st storage.Storage, issuerID string, leaf *x509.Certificate, start, end time.Time) (bool, error) {
	key, rec, ok := findStored(ctx, st, issuerID, leaf)
	w := storage.Window{Start: start.UTC(), End: end.UTC()}
	if !ok || sameWindow(rec, w) { // unchanged: no lock taken
		return ok, nil
	}
	_, err := keepWindow(ctx, st, key, rec.Names[0], leaf, w, 5*time.Second)
	return true, err
}

// sameWindow reports whether rec keeps the renewal window w, with the
// same next check and explanation.
func sameWindow(rec *storage.Certificate, w storage.Window) bool {
	r := rec.RenewalWindow
	return r != nil && r.Start.Equal(w.Start) && r.End.Equal(w.End) && r.NextCheck.Equal(w.NextCheck) && r.ExplanationURL == w.ExplanationURL
}

// findStored finds the record in st that holds leaf under issuerID (the
// default or the RSA variant of one of its names): its key and record.
func findStored(ctx context.Context, st storage.Storage, issuerID string, leaf *x509.Certificate) (key string, rec *storage.Certificate, ok bool) {
	names := append(slices.Clone(leaf.DNSNames), ipNames(leaf)...)
	for _, n := range names {
		for _, variant := range []string{"", "rsa"} {
			key, err := storage.CertificateKeyVariant(issuerID, n, variant)
			if err != nil {
				continue
			}
			data, err := st.Load(ctx, key)
			if err != nil {
				continue
			}
			if rec, cur, err := storage.UnmarshalCertificateLeaf(key, data); err == nil && cur.Equal(leaf) {
				return key, rec, true
			}
		}
	}
	return "", nil, false
}

// ipNames are the IP addresses leaf is for, as names.
func ipNames(leaf *x509.Certificate) []string {
	var out []string
	for _, ip := range leaf.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// alreadyRevoked reports whether err is the CA's answer that the
// certificate is revoked already.
func alreadyRevoked(err error) bool {
	var p acme.Problem
	return errors.As(err, &p) && p.Type == acme.ProblemTypeAlreadyRevoked
}

// markRevoked sets the Revoked mark of the record under key, if it still
// holds leaf (replaced reports that it does not), under the name's issue
// lock so that no renewal is overwritten, and tells the other nodes.
func markRevoked(ctx context.Context, st storage.Storage, key, name string, leaf *x509.Certificate, reasonName string) (replaced bool, err error) {
	replaced, err = updateStored(ctx, st, key, name, leaf, time.Minute, func(rec *storage.Certificate) bool {
		if rec.Revoked != nil { // a mark from an earlier run keeps its reason, as the CA does
			return false
		}
		rec.Revoked = &storage.Revocation{At: time.Now().UTC(), Reason: reasonName}
		return true
	})
	if err != nil || replaced {
		return replaced, err
	}
	// A lost notice only delays the replacement until the next check.
	// The key itself for the nodes holding the certificate (they read
	// it), revokedPrefix+key for those that only renew it (they need not
	// read what the notice says).
	_ = storage.NotifyVia(ctx, st, key)
	_ = storage.NotifyVia(ctx, st, revokedPrefix+key)
	return false, nil
}

// keepWindow stores the renewal window w in the record under key, if it
// still holds leaf and has another window, waiting at most
// lockWait for the name's issue lock.
func keepWindow(ctx context.Context, st storage.Storage, key, name string, leaf *x509.Certificate, w storage.Window, lockWait time.Duration) (replaced bool, err error) {
	return updateStored(ctx, st, key, name, leaf, lockWait, func(rec *storage.Certificate) bool {
		if sameWindow(rec, w) {
			return false
		}
		rec.RenewalWindow = &w
		return true
	})
}

// updateStored applies change to the record under key and stores it if
// change reports a change, under the name's issue lock (taken within
// lockWait) so that no renewal is overwritten, and only if the record
// still holds leaf (replaced reports that it does not).
func updateStored(ctx context.Context, st storage.Storage, key, name string, leaf *x509.Certificate, lockWait time.Duration, change func(*storage.Certificate) bool) (replaced bool, err error) {
	lctx, cancel := context.WithTimeout(ctx, lockWait)
	defer cancel()
	unlock, err := st.Lock(lctx, storage.IssueLock(name))
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", name, err)
	}
	defer unlock()
	data, err := st.Load(ctx, key)
	if err != nil {
		return false, err
	}
	rec, cur, err := storage.UnmarshalCertificateLeaf(key, data)
	if err != nil {
		return false, err
	}
	if !cur.Equal(leaf) {
		return true, nil
	}
	if !change(rec) {
		return false, nil
	}
	if data, err = storage.MarshalCertificate(rec); err != nil {
		return false, err
	}
	return false, st.Store(ctx, key, data)
}
