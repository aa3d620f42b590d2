// Package storage defines where certkeeper keeps what it must not lose:
// ACME accounts, private keys, certificates, the local CA, and the locks that
// let several processes share that state.
//
// A Storage is a key/value store of small blobs with a lease lock. It is the
// middle ground between autocert's Cache (which can neither list nor lock)
// and CertMagic's Storage (eight methods, three keys per certificate and a
// delete-to-roll-back "transaction"): one certificate is one value, so a
// crash can never tear a key from its chain.
//
// Keys are built only by the functions of this package (CertificateKey,
// AccountKey, ...) from names that package hostname has normalised. Backends
// still refuse keys that could escape their namespace (see ValidateKey).
//
// This package does not encrypt values: private keys rest as the backend
// keeps them (files 0600 in 0700 directories for filestore), unless the
// backend is wrapped by package storage/encrypted.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Storage is the contract every backend implements. Implementations must be
// safe for concurrent use by multiple goroutines, and — for backends shared
// between processes — by multiple processes.
//
// storagetest.Run is the conformance suite every backend must pass.
type Storage interface {
	// Load returns the value stored under key. An absent key returns an
	// error for which errors.Is(err, fs.ErrNotExist) is true.
	Load(ctx context.Context, key string) ([]byte, error)

	// Store replaces the value under key atomically: a concurrent or later
	// Load sees either the old value or the new one, never a mix, even if
	// the process dies during Store. The value is durable when Store
	// returns nil.
	Store(ctx context.Context, key string, value []byte) error

	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error

	// List returns the keys that start with prefix, sorted. A prefix that
	// ends in "/" lists a "directory"; an empty prefix lists everything.
	List(ctx context.Context, prefix string) ([]string, error)

	// Lock blocks until it holds the lock called name, or ctx is done (a
	// ctx done on entry fails Lock even if the lock is free). The lock is
	// a lease with an owner token: the backend renews it while it is
	// held, and it expires if the holder dies, so a crashed process delays
	// others by at most one lease. unlock releases only this holder's
	// lease and is safe to call more than once.
	//
	// Lock names follow the rules of keys (ValidateKey) but live in a
	// namespace of their own: holding "x" creates no key "x".
	//
	// Holders must re-check storage after Lock returns: another process
	// may have done the work while this one waited.
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// DurabilityChecker is implemented by the backends that can tell whether
// their server's settings may lose what is stored (redisstore, pgstore):
// CheckDurability returns a sentence per risk, naming the setting to
// change, or an error when the settings cannot be read.
type DurabilityChecker interface {
	CheckDurability(ctx context.Context) ([]string, error)
}

// VolatileStorer is implemented by backends that can store a value that
// need not survive a crash faster than Store: StoreVolatile replaces the
// value atomically and makes it visible to every process sharing the
// storage before it returns, but need not make it durable (filestore skips
// its fsyncs). certkeeper uses it for shared challenge answers, which are
// worthless after a crash (the validation they answer is abandoned with
// the process that asked for it), and for orders being finalized
// (PendingOrderKey), which serve a process that is killed, not one whose
// machine loses power. Callers fall back to Store when the backend does
// not implement it.
type VolatileStorer interface {
	StoreVolatile(ctx context.Context, key string, value []byte) error
}

// ErrInvalidKey is returned (wrapped) for a key, prefix or lock name that is
// empty, absolute, or contains "..", "\", NUL or other characters a backend
// cannot hold safely (see ValidateKey).
var ErrInvalidKey = errors.New("invalid storage key")

// maxKeyLen bounds a key; DNS names are at most 253 bytes, so no key built
// by this package comes near it.
const maxKeyLen = 1024

// ValidateKey returns nil if key is safe for every backend, and otherwise
// an error wrapping ErrInvalidKey. A safe key is non-empty, at most 1024
// bytes of valid UTF-8, relative and "/"-separated, with no empty segment,
// no ".." anywhere, no "\", ":" or control characters, and no segment that
// starts with "." or ends with "." or a space. Backends call it on every
// key and lock name they are given; key builders only produce keys that
// pass it.
//
// The rules are stricter than any one backend needs, so that a key valid on
// one backend is valid on all of them and a store can be migrated:
//   - "..", a leading "/" and "\" could escape a file store's directory;
//   - ":" is a drive or stream separator on Windows ("C:/x");
//   - Windows strips a trailing "." or space from file names, so "a." and
//     "a" would be one file;
//   - segments starting with "." are left to backends for their own files
//     (filestore's temporary files and lock leases), so no key can collide
//     with them.
func ValidateKey(key string) error {
	if len(key) > maxKeyLen {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrInvalidKey, len(key), maxKeyLen)
	}
	return validateKey(key)
}

// validateKey is ValidateKey without the length limit.
func validateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if key[0] == '/' {
		return fmt.Errorf("%w: %q is absolute", ErrInvalidKey, key)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidKey, key)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c < 0x20 || c == 0x7f || c == '\\' || c == ':' {
			return fmt.Errorf("%w: %q contains byte %#x", ErrInvalidKey, key, c)
		}
	}
	if strings.Contains(key, "..") {
		return fmt.Errorf("%w: %q contains \"..\"", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment", ErrInvalidKey, key)
		case seg[0] == '.':
			return fmt.Errorf("%w: %q has a segment starting with \".\"", ErrInvalidKey, key)
		case seg[len(seg)-1] == '.' || seg[len(seg)-1] == ' ':
			return fmt.Errorf("%w: %q has a segment ending in %q", ErrInvalidKey, key, seg[len(seg)-1])
		}
	}
	return nil
}

// ValidatePrefix is ValidateKey for List prefixes. A prefix is valid if it
// is empty (all keys) or if some valid key starts with it: "certificates/",
// "certificates/acme" and "certificates/acme/a.test" are valid;
// "certificates//", "a/.." and "/" are not.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > maxKeyLen {
		return fmt.Errorf("%w: prefix of %d bytes exceeds %d", ErrInvalidKey, len(prefix), maxKeyLen)
	}
	// Completing the last segment with a valid character gives the
	// shortest key that starts with prefix, if there is one.
	if err := validateKey(prefix + "x"); err != nil {
		return fmt.Errorf("%w: no key can start with prefix %q", ErrInvalidKey, prefix)
	}
	return nil
}
