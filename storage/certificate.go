package storage

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
)

// CertificateFields are the fields of a Certificate record that say what
// it holds and when it expires, decoded (with encoding/json, from the
// record's data) without its chain and key: a scan of many records (the
// Manager's renewal scan and expiry sweep, status.WalkDates) parses no
// certificate and no key.
type CertificateFields struct {
	Names     []string  `json:"names"`
	Issuer    string    `json:"issuer"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// Variant is the key's variant ("rsa" for an RSA fallback).
	Variant  string `json:"variant"`
	OnDemand bool   `json:"on_demand"`
	// Files marks cert issue's copy, which cert renew renews.
	Files         bool        `json:"files"`
	Revoked       *Revocation `json:"revoked"`
	RenewalWindow *Window     `json:"renewal_window"`
}

// Certificate is what certkeeper stores for one certificate: the private
// key, the chain and the metadata, encoded as one JSON value so a backend
// stores it with one atomic write and no reader can ever see a key without
// its chain.
type Certificate struct {
	// Names are the identifiers the certificate covers, normalised, in the
	// order they were requested (the first is the primary name).
	Names []string `json:"names"`
	// Issuer is the ID of the issuer that issued it (see IssuerID).
	Issuer string `json:"issuer"`
	// ChainPEM is the PEM chain, leaf first.
	ChainPEM []byte `json:"chain_pem"`
	// KeyPEM is the PKCS#8 PEM private key. It never appears in logs: see
	// LogValue.
	KeyPEM []byte `json:"key_pem"`
	// NotBefore and NotAfter are copied from the leaf for listing without
	// parsing.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// KeyType is the key type name ("ecdsa-p256", "rsa2048", ...).
	KeyType string `json:"key_type,omitempty"`
	// Profile is the ACME profile it was ordered with, if any.
	Profile string `json:"profile,omitempty"`
	// URL is the ACME certificate URL, for revocation and troubleshooting.
	URL string `json:"url,omitempty"`
	// Account is the ACME account URL that ordered it: ARI replacements
	// must come from the same account.
	Account string `json:"account,omitempty"`
	// Email is the contact the certificate was ordered for, so renewal
	// needs no configuration.
	Email string `json:"email,omitempty"`
	// Variant names a certificate kept beside the default one for the same
	// names ("rsa" for clients that cannot use ECDSA); empty for the
	// default. See CertificateKeyVariant.
	Variant string `json:"variant,omitempty"`
	// OnDemand is set for certificates obtained at a handshake (rather than
	// asked for by name), which stop being renewed when unused.
	OnDemand bool `json:"on_demand,omitempty"`
	// Files is set for a certificate issued for files in a directory
	// (cert issue, renewed by cert renew: package certfile/renew). A
	// Manager sharing the storage serves it but leaves its renewal to cert
	// renew, which writes the files the servers read; renewing it in
	// storage too would order it twice, with the Manager's own challenge
	// setup, for names that may not point at it.
	Files bool `json:"files,omitempty"`
	// Obtained is when certkeeper stored it.
	Obtained time.Time `json:"obtained"`
	// Meta holds issuer-specific data (ARI window, ...), opaque here.
	Meta json.RawMessage `json:"meta,omitempty"`
	// Revoked is set once the certificate was revoked at its CA
	// (certkeeper.RevokeStored, "certkeeper cert revoke -d"): a Manager
	// that serves or renews it replaces it at once, with a new key.
	Revoked *Revocation `json:"revoked,omitempty"`
	// RenewalWindow is the renewal window its CA last suggested (ACME
	// Renewal Information, RFC 9773), as a Manager asked it: status plans
	// the renewal from it as the Manager does, rather than from the
	// lifetime alone. Nil until a Manager has asked.
	RenewalWindow *Window `json:"renewal_window,omitempty"`
	// RenewalFailed is set by a Manager whose renewal of the certificate
	// just failed, while it still held the issue lock: the nodes of a
	// cluster that waited for the lock to renew it too do not order it
	// again at once, so an attempt that fails fails once for the cluster,
	// not once per node (each failed validation counts against the CA's
	// limits). A renewed certificate's record has none.
	RenewalFailed *RenewalFailure `json:"renewal_failed,omitempty"`
}

// RenewalFailure says which Manager's renewal of a stored certificate
// failed, when, and why.
type RenewalFailure struct {
	At    time.Time `json:"at"`
	Node  string    `json:"node"` // an identifier of the Manager, random at its start
	Error string    `json:"error,omitempty"`
}

// Window is a span of time, from Start to End: in RenewalWindow, the
// CA's suggested renewal window, with what the Manager that asked for it
// learnt beside.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// NextCheck is when the Manager that asked plans to ask again. Until
	// then the other Managers sharing the storage use this window rather
	// than each asking the CA, so a cluster asks once per certificate and
	// check, not once per node. Zero in records written before it existed
	// and in those cert renew keeps: then each Manager asks.
	NextCheck time.Time `json:"next_check,omitzero"`
	// ExplanationURL is the page the CA gave with the window, if any
	// (RFC 9773), for the operator.
	ExplanationURL string `json:"explanation_url,omitempty"`
}

// Revocation says when and why a stored certificate was revoked.
type Revocation struct {
	// At is when it was revoked.
	At time.Time `json:"at"`
	// Reason is the RFC 5280 reason's name ("keyCompromise", ...).
	Reason string `json:"reason"`
}

// MarshalCertificate encodes c for Storage.Store.
func MarshalCertificate(c *Certificate) ([]byte, error) {
	if len(c.ChainPEM) == 0 || len(c.KeyPEM) == 0 {
		return nil, errors.New("encoding certificate: chain and key are both required")
	}
	data, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return nil, fmt.Errorf("encoding certificate for %v: %w", c.Names, err)
	}
	return data, nil
}

// ErrInvalidRecord is wrapped by the errors for a stored value certkeeper
// refuses to use, whoever wrote it: a certificate record that does not
// decode, whose key does not match its chain, that names no name, names
// one its leaf does not cover, or sits under the key of a name it does not
// hold (UnmarshalCertificate); or a value that should be sealed and is not
// (package storage/encrypted). Such a value is reported by its key and
// skipped, never served: anyone who can write storage can plant one.
var ErrInvalidRecord = errors.New("invalid stored record")

// UnmarshalCertificate decodes the value stored under key (written by
// MarshalCertificate) and checks that it can be served as what it says it
// is: a key and chain that belong together, at least one name, the name
// key was built from (CertificateKeyVariant) among the names, and a leaf
// that covers every name as a TLS client checks it (x509's VerifyHostname:
// wildcards cover one label, IP names need IP addresses). Code that reads
// Names[0] relies on these checks. A value that fails them gives an error
// wrapping ErrInvalidRecord that names key.
func UnmarshalCertificate(key string, data []byte) (*Certificate, error) {
	c, _, err := UnmarshalCertificateLeaf(key, data)
	return c, err
}

// UnmarshalCertificateLeaf is UnmarshalCertificate that also returns the
// parsed leaf it checked, for readers that need the leaf's fields (status)
// without parsing it a second time.
func UnmarshalCertificateLeaf(key string, data []byte) (*Certificate, *x509.Certificate, error) {
	c, leaf, _, err := unmarshalCertificate(key, data, false)
	return c, leaf, err
}

// UnmarshalCertificateTLS is UnmarshalCertificate that also returns the
// certificate ready to serve (Leaf set), built from the leaf and key its
// checks parsed: loading a certificate parses each of them once, where
// UnmarshalCertificate followed by TLSCertificate parses both twice (and
// leaves a twin of the kept leaf behind as garbage).
func UnmarshalCertificateTLS(key string, data []byte) (*Certificate, *tls.Certificate, error) {
	c, _, tc, err := unmarshalCertificate(key, data, true)
	return c, tc, err
}

// unmarshalCertificate decodes and checks a record (UnmarshalCertificate)
// and returns its leaf, and with servable the *tls.Certificate too.
func unmarshalCertificate(key string, data []byte, servable bool) (*Certificate, *x509.Certificate, *tls.Certificate, error) {
	var c Certificate
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: certificate record %s: decoding: %w", ErrInvalidRecord, key, err)
	}
	// The cheap checks first: a planted value fails before any parsing.
	if err := c.checkKey(key); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: certificate record %s: %w", ErrInvalidRecord, key, err)
	}
	var tc *tls.Certificate
	leaf, priv, rest := c.paired()
	switch {
	case leaf != nil && servable:
		tc = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: priv, Leaf: leaf}
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" { // as X509KeyPair, which skips other blocks
				tc.Certificate = append(tc.Certificate, b.Bytes)
			}
		}
	case leaf == nil:
		var err error
		if tc, err = c.TLSCertificate(); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: certificate record %s: %w", ErrInvalidRecord, key, err)
		}
		leaf = tc.Leaf
		if leaf == nil { // GODEBUG=x509keypairleaf=0
			if leaf, err = c.Leaf(); err != nil {
				return nil, nil, nil, fmt.Errorf("%w: certificate record %s: %w", ErrInvalidRecord, key, err)
			}
		}
	}
	for _, n := range c.Names {
		if err := leaf.VerifyHostname(n); err != nil {
			return nil, nil, nil, fmt.Errorf("%w: certificate record %s: its leaf does not cover %q (it covers %s)",
				ErrInvalidRecord, key, n, leafNames(leaf))
		}
	}
	return &c, leaf, tc, nil
}

// UnmarshalFields decodes the fields of the certificate record data
// stored under key, checked as cheaply as they are decoded (checkKey):
// names that are host names as certkeeper writes them, one of which the
// key was made from. An error wraps ErrInvalidRecord.
func UnmarshalFields(key string, data []byte) (CertificateFields, error) {
	var f CertificateFields
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("%w: certificate record %s: decoding: %w", ErrInvalidRecord, key, err)
	}
	if err := (&Certificate{Names: f.Names, Variant: f.Variant}).checkKey(key); err != nil {
		return f, fmt.Errorf("%w: certificate record %s: %w", ErrInvalidRecord, key, err)
	}
	return f, nil
}

// CheckNames reports the first of names that is not a host name as
// certkeeper writes them (hostname.Normalizer with IP addresses and
// wildcards, already normalised). A record's names flow into file paths,
// server configuration (certdeploy's nginx map), hooks' environment and
// the terminal: one that anyone who can write the storage planted
// ("x;\n}\ninit_by_lua_block {...}", a leaf made to carry it as a SAN)
// must stop at the record.
func CheckNames(names []string) error {
	n := hostname.Normalizer{AllowIP: true, AllowWildcard: true}
	for _, name := range names {
		if norm, err := n.Normalize(name); err != nil || norm != name {
			return fmt.Errorf("its name %q is not a host name as certkeeper writes them", name)
		}
	}
	return nil
}

// checkKey reports why c cannot be the record stored under key: it has no
// names, a name that is no normalised host name (CheckNames), or key was
// not made from any of them.
func (c *Certificate) checkKey(key string) error {
	if len(c.Names) == 0 {
		return errors.New("it holds no names")
	}
	if err := CheckNames(c.Names); err != nil {
		return err
	}
	// The key is certificates/ISSUER/SEGMENT.json, SEGMENT made from one
	// name (shortened, and with the variant, as CertificateKeyVariant
	// does): build each name's key and compare, rather than parse.
	segs := strings.Split(key, "/")
	if len(segs) == 3 && segs[0]+"/" == CertificatePrefix("") {
		for _, n := range c.Names {
			if k, err := CertificateKeyVariant(segs[1], n, c.Variant); err == nil && k == key {
				return nil
			}
		}
	}
	return fmt.Errorf("the name its key was made from is not among its names %q (variant %q)", c.Names, c.Variant)
}

// leafNames lists the DNS names and IP addresses leaf covers, for errors.
func leafNames(leaf *x509.Certificate) string {
	names := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name"
	}
	const show = 5
	if len(names) > show {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
	}
	return strings.Join(names, ", ")
}

// paired is the fast path of the key-and-chain check, for a record as
// certkeeper writes it (a "CERTIFICATE" block first, a PKCS#8 "PRIVATE
// KEY"): it returns the parsed leaf and key when tls.X509KeyPair would
// accept the pair with that leaf, with the chain's PEM after the leaf, and
// a nil leaf when it cannot tell; TLSCertificate then
// decides, with X509KeyPair's own error. It parses the leaf and the key
// once each, and skips the PKCS#1 attempt X509KeyPair makes first (a
// failed parse that costs as much as the key's), which is most of the
// saving when status or the start-up scan read every record.
func (c *Certificate) paired() (leaf *x509.Certificate, priv crypto.PrivateKey, rest []byte) {
	cb, rest := pem.Decode(c.ChainPEM)
	kb, _ := pem.Decode(c.KeyPEM)
	if cb == nil || cb.Type != "CERTIFICATE" || kb == nil || kb.Type != "PRIVATE KEY" {
		return nil, nil, nil
	}
	leaf, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, nil
	}
	// A PKCS#8 structure never parses as PKCS#1 (its second element is a
	// SEQUENCE, not an INTEGER), so X509KeyPair would reach the same key.
	priv, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, nil
	}
	var ok bool
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		pub, isRSA := leaf.PublicKey.(*rsa.PublicKey)
		ok = isRSA && k.PublicKey.Equal(pub)
	case *ecdsa.PrivateKey:
		pub, isEC := leaf.PublicKey.(*ecdsa.PublicKey)
		ok = isEC && k.PublicKey.Equal(pub)
	case ed25519.PrivateKey:
		pub, isEd := leaf.PublicKey.(ed25519.PublicKey)
		ok = isEd && k.Public().(ed25519.PublicKey).Equal(pub)
	}
	if !ok {
		return nil, nil, nil
	}
	return leaf, priv, rest
}

// TLSCertificate parses the key and chain into a *tls.Certificate with Leaf
// set, ready to be served.
func (c *Certificate) TLSCertificate() (*tls.Certificate, error) {
	tc, err := tls.X509KeyPair(c.ChainPEM, c.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate record for %v: %w", c.Names, err)
	}
	return &tc, nil
}

// Leaf parses the first certificate of the chain.
func (c *Certificate) Leaf() (*x509.Certificate, error) {
	block, _ := pem.Decode(c.ChainPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("certificate record for %v: no PEM certificate in chain", c.Names)
	}
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate record for %v: parsing leaf: %w", c.Names, err)
	}
	return leaf, nil
}

// PrivateKey parses KeyPEM.
func (c *Certificate) PrivateKey() (crypto.Signer, error) {
	return ParsePrivateKeyPEM(c.KeyPEM)
}

// LogValue keeps the private key out of every log line, whatever handler
// or attribute a caller uses. It has a value receiver so that a Certificate
// logged by value (slog.Any("cert", *c)) is redacted too.
func (c Certificate) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("names", c.Names),
		slog.String("issuer", c.Issuer),
		slog.Time("not_after", c.NotAfter),
		slog.String("key", "REDACTED"),
	)
}

// String describes c without its private key, so that fmt's %v and %s
// (and log.Printf) cannot print KeyPEM.
func (c Certificate) String() string {
	return fmt.Sprintf("certificate for %v from %s, not after %s, key REDACTED",
		c.Names, c.Issuer, c.NotAfter.Format(time.RFC3339))
}

// GoString is String for %#v, which would otherwise print every field.
func (c Certificate) GoString() string { return c.String() }

// ParsePrivateKeyPEM parses a PEM private key in PKCS#8, PKCS#1 (RSA) or
// SEC 1 (EC) form.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("parsing private key: no PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("parsing private key: %T is not a signer", k)
		}
		return s, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("parsing private key: unsupported %q block", block.Type)
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 PEM block.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
