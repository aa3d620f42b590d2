package localca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// record is how a CA certificate and its key are stored: one JSON value,
// so the certificate can never be found without its key. PEM is kept as
// strings so an operator reading the value sees PEM, not base64.
type record struct {
	CertificatePEM string `json:"certificate_pem"`
	KeyPEM         string `json:"key_pem"`
}

// errDamaged marks a stored value that exists but cannot be used.
var errDamaged = errors.New("damaged")

// authority returns the current root and intermediate, loading them from
// Storage, or creating them, when none is cached or the intermediate is
// due for renewal. Goroutines racing here each go to Storage; the Storage
// lock makes only one of them create anything.
func (ca *CA) authority(ctx context.Context) (*authority, error) {
	if ca.Storage == nil {
		return nil, errors.New("local CA: no Storage configured")
	}
	ca.mu.Lock()
	a := ca.cur
	ca.mu.Unlock()
	now := time.Now()
	if a != nil && !ca.due(a, now) {
		return a, nil
	}
	a, err := ca.load(ctx, now)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	ca.cur = a
	ca.mu.Unlock()
	return a, nil
}

// due reports whether a's intermediate should be replaced: it has expired,
// or it is in the last third of its life (or too close to its end to give
// a leaf its full lifetime) and a new one from the root would live longer.
func (ca *CA) due(a *authority, now time.Time) bool {
	if !now.Before(a.inter.NotAfter) {
		return true
	}
	threshold := max(interLifetime/3, ca.lifetime())
	return a.inter.NotAfter.Sub(now) < threshold && a.root.NotAfter.After(a.inter.NotAfter)
}

// load reads the authority from Storage and, if it is absent or due,
// creates what is missing under the Storage lock.
func (ca *CA) load(ctx context.Context, now time.Time) (*authority, error) {
	a, err := ca.read(ctx)
	if err == nil && !ca.due(a, now) {
		return a, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errDamaged) {
		return nil, err
	}
	unlock, err := ca.Storage.Lock(ctx, storage.LocalCALock())
	if err != nil {
		return nil, fmt.Errorf("locking local CA: %w", err)
	}
	defer unlock()
	return ca.create(ctx, now)
}

// read loads the root and the intermediate.
func (ca *CA) read(ctx context.Context) (*authority, error) {
	root, _, err := ca.readRecord(ctx, whichRoot)
	if err != nil {
		return nil, err
	}
	inter, interKey, err := ca.readRecord(ctx, whichIntermediate)
	if err != nil {
		return nil, err
	}
	if err := inter.CheckSignatureFrom(root); err != nil {
		return nil, fmt.Errorf("local CA intermediate not signed by the root: %w: %w", errDamaged, err)
	}
	return newAuthority(root, inter, interKey), nil
}

// create runs under the Storage lock. It re-reads what another process may
// have written meanwhile, then creates a root if there is none and an
// intermediate if there is none, it is unusable or due. A root that exists
// but cannot be read is an error, never replaced: clients trust it.
func (ca *CA) create(ctx context.Context, now time.Time) (*authority, error) {
	root, rootKey, err := ca.readRecord(ctx, whichRoot)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if root, rootKey, err = ca.newRoot(ctx, now); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}
	if !now.Before(root.NotAfter) {
		return nil, fmt.Errorf("local CA root %q expired at %s: delete %s to create a new one",
			root.Subject.CommonName, root.NotAfter.UTC().Format(time.RFC3339), storage.LocalCAKey(whichRoot))
	}

	inter, interKey, err := ca.readRecord(ctx, whichIntermediate)
	switch {
	case err == nil && inter.CheckSignatureFrom(root) == nil:
		if a := newAuthority(root, inter, interKey); !ca.due(a, now) {
			return a, nil
		}
	case err == nil, errors.Is(err, fs.ErrNotExist), errors.Is(err, errDamaged):
		// Signed by another root, absent or unreadable: the
		// intermediate can always be made again.
	default:
		return nil, err
	}
	inter, interKey, err = ca.newIntermediate(ctx, now, root, rootKey)
	if err != nil {
		return nil, err
	}
	return newAuthority(root, inter, interKey), nil
}

func newAuthority(root, inter *x509.Certificate, interKey crypto.Signer) *authority {
	return &authority{
		root:     root,
		inter:    inter,
		interKey: interKey,
		interPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw}),
	}
}

// readRecord loads and parses one CA certificate and its key. Absent:
// fs.ErrNotExist; present but unusable: errDamaged.
func (ca *CA) readRecord(ctx context.Context, which string) (*x509.Certificate, crypto.Signer, error) {
	key := storage.LocalCAKey(which)
	data, err := ca.Storage.Load(ctx, key)
	if err != nil {
		return nil, nil, fmt.Errorf("loading local CA %s from %s: %w", which, key, err)
	}
	cert, signer, err := parseRecord(data)
	if err != nil {
		return nil, nil, fmt.Errorf("local CA %s at %s is %w: %w", which, key, errDamaged, err)
	}
	return cert, signer, nil
}

func parseRecord(data []byte) (*x509.Certificate, crypto.Signer, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode([]byte(r.CertificatePEM))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if !cert.IsCA {
		return nil, nil, errors.New("not a CA certificate")
	}
	key, err := storage.ParsePrivateKeyPEM([]byte(r.KeyPEM))
	if err != nil {
		return nil, nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, errors.New("key does not match certificate")
	}
	return cert, key, nil
}

// newRoot creates and stores a root.
func (ca *CA) newRoot(ctx context.Context, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	id, err := shortID()
	if err != nil {
		return nil, nil, fmt.Errorf("creating local CA root: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   ca.name() + " root " + id,
			Organization: []string{ca.name()},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.AddDate(rootYears, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            1,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return ca.newCA(ctx, whichRoot, tmpl, nil, nil)
}

// newIntermediate creates and stores an intermediate signed by root,
// ending no later than the root.
func (ca *CA) newIntermediate(ctx context.Context, now time.Time, root *x509.Certificate, rootKey crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	id, err := shortID()
	if err != nil {
		return nil, nil, fmt.Errorf("creating local CA intermediate: %w", err)
	}
	notAfter := now.Add(interLifetime)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   ca.name() + " intermediate " + id,
			Organization: []string{ca.name()},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return ca.newCA(ctx, whichIntermediate, tmpl, root, rootKey)
}

// newCA generates a P-256 key, signs tmpl with parentKey (itself when
// parent is nil), and stores the result under storage.LocalCAKey(which).
func (ca *CA) newCA(ctx context.Context, which string, tmpl, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("creating local CA %s key: %w", which, err)
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, nil, fmt.Errorf("creating local CA %s: %w", which, err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("creating local CA %s: %w", which, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing new local CA %s: %w", which, err)
	}
	keyPEM, err := storage.MarshalPrivateKeyPEM(key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating local CA %s: %w", which, err)
	}
	data, err := json.MarshalIndent(record{
		CertificatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		KeyPEM:         string(keyPEM),
	}, "", "\t")
	if err != nil {
		return nil, nil, fmt.Errorf("encoding local CA %s: %w", which, err)
	}
	skey := storage.LocalCAKey(which)
	if err := ca.Storage.Store(ctx, skey, data); err != nil {
		return nil, nil, fmt.Errorf("storing local CA %s at %s: %w", which, skey, err)
	}
	ca.logger().Info("local CA "+which+" created",
		slog.String("subject", cert.Subject.CommonName),
		slog.Time("not_after", cert.NotAfter),
		slog.String("key", skey))
	return cert, key, nil
}

// randomSerial returns 128 random bits: above the 64 bits of the CA/B
// Forum Baseline Requirements §7.1 and within RFC 5280's 20 octets.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generating serial number: %w", err)
		}
		if n.Sign() > 0 { // RFC 5280 §4.1.2.2: positive
			return n, nil
		}
	}
}
