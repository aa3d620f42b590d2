package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/certkeeper/certkeeper/internal/redact"
)

// Key layout. Every key certkeeper writes is built here, so the layout is
// documented in one place (docs/storage.md repeats it for operators):
//
//	certificates/ISSUER/NAME.json   one certificate: key + chain + metadata
//	accounts/ISSUER/EMAIL.json      one ACME account: URL, contact, status
//	accounts/ISSUER/EMAIL.key       its private key (PEM), written first
//	localca/root.json               the local CA's root (key + certificate)
//	localca/intermediate.json       the local CA's intermediate
//	accounts/ISSUER/EMAIL.key.next  a new account key during a rollover, and
//	accounts/ISSUER/EMAIL.key.old   the one it replaced (package acmeca)
//	ocsp/FINGERPRINT.der            the OCSP staple of one certificate (StapleKey)
//	state/WHICH.json                the Manager's own state (StateKey, OrdersKey)
//	challenges/TYPE/ID.json         a challenge answer shared in a cluster (ChallengeKey)
//	pending/NAME.json               an order being finalized, with its key (PendingOrderKey)
//	issue/NAME, account/ISSUER      lock names (IssueLock, AccountLock, and
//	state/renewal-errors            status.FailuresLock): they follow the
//	                                rules of keys but are not keys
//
// ISSUER is an issuer ID (see IssuerID); NAME a normalised hostname, with
// a wildcard's "*" spelled "wildcard_" so the key is a safe file name.

// CertificateKey is the key of the certificate for name issued by issuerID.
// name must already be normalised (package hostname); the builder refuses
// anything else rather than guessing.
func CertificateKey(issuerID, name string) (string, error) {
	seg, err := NameSegment(name)
	if err != nil {
		return "", err
	}
	if err := checkSegment("issuer ID", issuerID); err != nil {
		return "", err
	}
	key := "certificates/" + issuerID + "/" + seg + ".json"
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// CertificateKeyVariant is CertificateKey for another certificate of the
// same name kept beside the default one, such as the RSA certificate
// served to clients that cannot use ECDSA (variant "rsa"): it adds
// "_VARIANT" to the name's segment, which no name can end in (names have no
// "_"). The empty variant gives CertificateKey.
func CertificateKeyVariant(issuerID, name, variant string) (string, error) {
	key, err := CertificateKey(issuerID, name)
	if err != nil || variant == "" {
		return key, err
	}
	if err := checkVariant(variant); err != nil {
		return "", err
	}
	return strings.TrimSuffix(key, ".json") + "_" + variant + ".json", nil
}

// checkVariant refuses a variant that is not lower-case letters and digits.
func checkVariant(variant string) error {
	for i := 0; i < len(variant); i++ {
		if c := variant[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: variant %q", ErrInvalidKey, variant)
		}
	}
	return nil
}

// PendingOrderKey is the key of the order being finalized for the
// certificate of name (and variant, as for CertificateKeyVariant): the
// order's URL and the certificate's private key, stored before the CA is
// asked to sign, so that a process killed before it sees the certificate
// fetches it at its next attempt instead of ordering (and spending the
// CA's limits on) the same certificate again. It holds a private key
// (IsSecret), and is deleted once the certificate is stored.
func PendingOrderKey(name, variant string) (string, error) {
	seg, err := NameSegment(name)
	if err != nil {
		return "", err
	}
	if err := checkVariant(variant); err != nil {
		return "", err
	}
	if variant != "" {
		seg += "_" + variant
	}
	key := "pending/" + seg + ".json"
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// CertificatePrefix is the List prefix of all certificates of issuerID, or
// of every issuer when issuerID is "".
func CertificatePrefix(issuerID string) string {
	if issuerID == "" {
		return "certificates/"
	}
	return "certificates/" + issuerID + "/"
}

// AccountKey is the key of the ACME account registered at issuerID for
// email (which may be empty: an account without contact).
func AccountKey(issuerID, email string) (string, error) {
	if err := checkSegment("issuer ID", issuerID); err != nil {
		return "", err
	}
	seg := "default"
	if email != "" {
		e := strings.ToLower(email)
		if strings.ContainsAny(e, "/\\") || strings.Contains(e, "..") || strings.HasPrefix(e, ".") {
			return "", fmt.Errorf("%w: email %q", ErrInvalidKey, email)
		}
		seg = e
	}
	if err := checkSegment("email", seg); err != nil {
		return "", err
	}
	// The parts are valid one by one; together they must still fit.
	key := "accounts/" + issuerID + "/" + seg + ".json"
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// AccountEmail is the email under which the account record key
// (AccountKey) is stored: "" for the account without a contact.
func AccountEmail(key string) string {
	seg := strings.TrimSuffix(path.Base(key), ".json")
	if seg == "default" {
		return ""
	}
	return seg
}

// AccountPrivateKey is the key of the private key of the ACME account at
// issuerID for email. It is stored apart from the account record
// (AccountKey), and before the account is registered, so a lost record can
// be recovered from the key (RFC 8555 §7.3.1, onlyReturnExisting).
func AccountPrivateKey(issuerID, email string) (string, error) {
	k, err := AccountKey(issuerID, email)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(k, ".json") + ".key", nil
}

// LocalCAKey is the key of one of the local CA's certificates ("root" or
// "intermediate").
func LocalCAKey(which string) string { return "localca/" + which + ".json" }

// IsSecret reports whether the value under key holds a private key: a
// certificate (key and chain in one value), an ACME account's private key
// (AccountPrivateKey, and the next and previous keys a key rollover keeps
// beside it, .key.next and .key.old), the local CA (LocalCAKey) or an
// order being finalized (PendingOrderKey). Package
// storage/encrypted seals exactly these values; the others (account
// records, rate-limit and renewal state, staples, shared challenge
// answers) hold no secret and stay readable for operators and tools.
func IsSecret(key string) bool {
	switch {
	case strings.HasPrefix(key, CertificatePrefix("")):
		return true
	case strings.HasPrefix(key, "accounts/") &&
		(strings.HasSuffix(key, ".key") || strings.HasSuffix(key, ".key.next") || strings.HasSuffix(key, ".key.old")):
		return true
	case strings.HasPrefix(key, "localca/"), strings.HasPrefix(key, "pending/"):
		return true
	}
	return false
}

// IsKnownKey reports whether key has the shape of a key certkeeper writes:
// one built by CertificateKey, CertificateKeyVariant, AccountKey,
// AccountPrivateKey (with the ".next" and ".old" a key rollover adds),
// LocalCAKey, StateKey, OrdersKey, StapleKey, ChallengeKey or
// PendingOrderKey. It checks
// the layout only (top-level directory, number of segments, extension),
// not the values: a key it reports may still hold a value certkeeper
// refuses.
//
// Copying or importing state refuses other keys, such as the
// "archive/a.test/privkey1.pem" of another ACME client's directory: they
// would land in storage as opaque values, and one holding a private key
// would be stored in clear even in encrypted storage, since IsSecret does
// not know it. A key a newer certkeeper adds under a new directory is
// unknown to this one, which then refuses state written by the newer
// version rather than keeping what it cannot read.
func IsKnownKey(key string) bool {
	if ValidateKey(key) != nil {
		return false
	}
	dir, rest, _ := strings.Cut(key, "/")
	segs := strings.Split(rest, "/")
	last := segs[len(segs)-1]
	// stem reports whether the last segment is a non-empty name followed
	// by one of exts.
	stem := func(exts ...string) bool {
		for _, ext := range exts {
			if s, ok := strings.CutSuffix(last, ext); ok && s != "" {
				return true
			}
		}
		return false
	}
	switch dir {
	case "certificates", "challenges":
		return len(segs) == 2 && stem(".json")
	case "accounts":
		return len(segs) == 2 && stem(".json", ".key", ".key.next", ".key.old")
	case "localca", "pending":
		return len(segs) == 1 && stem(".json")
	case "state":
		return stem(".json")
	case "ocsp":
		fp, ok := strings.CutSuffix(last, ".der")
		if !ok || len(segs) != 1 {
			return false
		}
		_, err := StapleKey(fp)
		return err == nil
	}
	return false
}

// SecretPrefixes returns the List prefixes under which every key that
// IsSecret reports lies (with some that it does not: account records),
// for a caller that visits the secrets without listing the whole storage.
// Filter what they list with IsSecret.
func SecretPrefixes() []string {
	return []string{CertificatePrefix(""), "accounts/", "localca/", "pending/"}
}

// StateKey is the key of a piece of the Manager's own state that must
// survive restarts (which), such as issuance failures and rate-limit
// budgets, so a crash loop cannot spend a CA's limits again.
func StateKey(which string) string { return "state/" + which + ".json" }

// StapleKey is the key of the OCSP staple (a DER OCSP response) of the
// certificate whose SHA-256 fingerprint, in lower-case hex, is fingerprint.
// Keying staples by fingerprint ties each to exactly one certificate: a
// renewed certificate, with a new fingerprint, never finds its
// predecessor's staple.
func StapleKey(fingerprint string) (string, error) {
	if len(fingerprint) != 64 {
		return "", fmt.Errorf("%w: fingerprint %q is not 64 hex digits", ErrInvalidKey, fingerprint)
	}
	for i := 0; i < len(fingerprint); i++ {
		if c := fingerprint[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%w: fingerprint %q is not lower-case hex", ErrInvalidKey, fingerprint)
		}
	}
	return "ocsp/" + fingerprint + ".der", nil
}

// LocalCALock is the name of the lock held while the local CA's root or
// intermediate is created or renewed.
func LocalCALock() string { return "localca" }

// IssueLock is the name of the lock held while a certificate for name is
// obtained or renewed, so only one process in a cluster orders it. An
// IPv6 literal's ":" is spelled "_", as in keys (NameSegment).
func IssueLock(name string) string { return "issue/" + strings.ReplaceAll(name, ":", "_") }

// AccountLock is the name of the lock held while an account is created at
// issuerID, so concurrent processes do not register twice.
func AccountLock(issuerID string) string { return "account/" + issuerID }

// IssuerID turns an ACME directory URL into a storage-safe issuer ID that
// stays the same across runs: host (with port) and path, with every
// character outside [a-z0-9.-], a leading or trailing "." and each ".."
// replaced by "-".
// "https://acme-v02.api.letsencrypt.org/directory" becomes
// "acme-v02.api.letsencrypt.org-directory". User information never enters
// the ID (which names keys and appears in logs), even in a URL that does
// not parse: a URL holding "@" is first cut as redact.URL cuts it.
func IssuerID(directoryURL string) string {
	src := directoryURL
	if strings.Contains(src, "@") {
		src = redact.URL(src)
	}
	u, err := url.Parse(src)
	var s string
	if err != nil || u.Host == "" {
		s = src
	} else {
		s = u.Host + u.Path
	}
	s = strings.ToLower(strings.TrimSuffix(s, "/"))
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		// A leading or trailing "." would make an invalid key segment.
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-',
			c == '.' && i > 0 && i < len(s)-1:
			b.WriteByte(c)
		default:
			b.WriteByte('-')
		}
	}
	id := strings.ReplaceAll(b.String(), "..", "--")
	if id == "" {
		id = "unknown"
	}
	// A directory URL of any length must give a usable key segment (and
	// file name): long ones are cut and suffixed with a hash of the URL.
	if len(id) > maxNameSegment {
		sum := sha256.Sum256([]byte(src))
		id = strings.TrimRight(id[:maxNameSegment-17], ".") + "-" + hex.EncodeToString(sum[:8])
	}
	return id
}

// maxNameSegment keeps a name's segment plus an extension within the 255
// bytes most file systems allow in one file name; a 253-byte DNS name would
// not fit otherwise.
const maxNameSegment = 200

// NameSegment spells a normalised hostname or IP literal as one key segment
// (and file name), the way every key builder and package certfile do: a
// wildcard's "*." becomes "wildcard_", an IPv6 ":" becomes "_", and a name
// longer than 200 bytes is cut and suffixed with "_" and 16 hex digits of
// its SHA-256, so distinct names stay distinct.
func NameSegment(name string) (string, error) {
	seg, err := nameSegment(name)
	if err != nil {
		return "", err
	}
	if len(seg) > maxNameSegment {
		sum := sha256.Sum256([]byte(name))
		seg = seg[:maxNameSegment-17] + "_" + hex.EncodeToString(sum[:8])
	}
	return seg, nil
}

// nameSegment checks a normalised hostname (or IP literal) and spells it
// as one key segment, without shortening.
func nameSegment(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrInvalidKey)
	}
	if len(name) > 253 && !strings.Contains(name, ":") {
		return "", fmt.Errorf("%w: name of %d bytes", ErrInvalidKey, len(name))
	}
	seg := name
	if rest, ok := strings.CutPrefix(seg, "*."); ok {
		if rest == "" {
			return "", fmt.Errorf("%w: wildcard name %q has no domain", ErrInvalidKey, name)
		}
		seg = "wildcard_" + rest
	}
	// IPv6 literals: ":" is refused in keys (it is a drive separator on
	// Windows), so spell it "_".
	seg = strings.ReplaceAll(seg, ":", "_")
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return "", fmt.Errorf("%w: name %q is not normalised (byte %#x)", ErrInvalidKey, name, c)
		}
	}
	if err := checkSegment("name", seg); err != nil {
		return "", err
	}
	return seg, nil
}

// checkSegment reports whether seg can be one segment of a key: it passes
// ValidateKey and holds no "/". Appending ".json" or ".key" to such a
// segment keeps it valid, since it cannot end in ".".
func checkSegment(what, seg string) error {
	if strings.Contains(seg, "/") || ValidateKey(seg) != nil {
		return fmt.Errorf("%w: %s %q", ErrInvalidKey, what, seg)
	}
	return nil
}
