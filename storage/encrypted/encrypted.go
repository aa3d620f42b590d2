// Package encrypted wraps any storage.Storage so that the values holding
// private keys rest encrypted: a Redis dump, a copied storage directory or
// a backup of either does not hand out certificate, account or CA keys.
//
// It seals with AES-256-GCM, a key the operator holds (a file of one or
// more keys, see ParseKeys), and the storage key as associated data, so a
// sealed value moved to another key does not open. Each sealed value
// names the key that sealed it by a short key ID, so keys can be rotated:
// new values are sealed with the first key, values sealed with any key of
// the file still open, and Rekey seals everything again with the first.
//
// A value that should be sealed and is not is refused (ErrNotSealed):
// anyone who can write the backend could otherwise plant a private key of
// their choosing, served as a certificate's or used as the account's.
// Values stored before encryption was turned on are sealed by Rekey, which
// is how a storage is moved to encryption.
//
// What it seals (storage.IsSecret): certificates ("certificates/…", key
// and chain in one value), account keys ("accounts/…/….key", and a key
// rollover's ….key.next and ….key.old) and the
// local CA ("localca/…"). Other values (account records, rate-limit and
// renewal state, shared challenge answers) hold no secret and stay
// readable, for operators and tools. Lock names, key names and value
// sizes are not hidden.
//
// It does not manage the key file: losing it loses every sealed value.
package encrypted

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/certkeeper/certkeeper/internal/fileowner"
	"github.com/certkeeper/certkeeper/storage"
)

// KeySize is the size of a storage key: 32 bytes, for AES-256.
const KeySize = 32

// magic starts every sealed value, so one is told from a clear value at a
// glance, by tools and by Load.
const magic = "certkeeper-sealed:v1:"

// ErrWrongKey is returned (wrapped) for a sealed value whose key is not
// among the Store's keys, or that does not open with it.
var ErrWrongKey = errors.New("value sealed with a key this storage key file does not hold")

// ErrNotSealed is returned (wrapped, with storage.ErrInvalidRecord) by Load
// for a value under a key whose values are sealed (storage.IsSecret) that
// is stored in clear: one written around certkeeper, or stored before
// encryption was turned on and not yet sealed by Rekey. Check returns it
// for a storage whose private keys are all in clear.
var ErrNotSealed = errors.New("private key stored in clear where a sealed one belongs")

// rekeyHint is what an ErrNotSealed error says to do.
const rekeyHint = `if this storage held private keys before encryption was turned on, seal them with "certkeeper storage rekey"; otherwise it was written around certkeeper: delete it`

// Key is one storage key and its ID.
type Key struct {
	// ID names the key in sealed values: 8 bytes of a SHA-256 of the key,
	// in hex. It reveals nothing of the key.
	ID   string
	aead cipher.AEAD
}

// NewKey makes a Key of 32 bytes of secret.
func NewKey(secret []byte) (*Key, error) {
	if len(secret) != KeySize {
		return nil, fmt.Errorf("storage key: %d bytes, want %d", len(secret), KeySize)
	}
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, fmt.Errorf("storage key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("storage key: %w", err)
	}
	sum := sha256.Sum256(append([]byte("certkeeper storage key id\x00"), secret...))
	return &Key{ID: hex.EncodeToString(sum[:8]), aead: aead}, nil
}

// GenerateKey returns a new random key in the text form ParseKeys reads:
// 32 bytes in standard base64, and a newline.
func GenerateKey() []byte {
	var b [KeySize]byte
	rand.Read(b[:]) // never fails
	return []byte(base64.StdEncoding.EncodeToString(b[:]) + "\n")
}

// ParseKeys reads a key file: one key per line, each 32 bytes in standard
// base64 (as GenerateKey writes) or 64 hex digits. Blank lines and lines
// starting with "#" are skipped. The first key seals; all of them open,
// which is how a key is rotated (docs/storage.md).
func ParseKeys(data []byte) ([]*Key, error) {
	var keys []*Key
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		secret, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(secret) != KeySize {
			secret, err = hex.DecodeString(line)
		}
		if err != nil || len(secret) != KeySize {
			return nil, fmt.Errorf("line %d: not a key of %d bytes in base64 or hex (make one with: certkeeper storage keygen)", i+1, KeySize)
		}
		k, err := NewKey(secret)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		for _, o := range keys {
			if o.ID == k.ID {
				return nil, fmt.Errorf("line %d: the same key as an earlier line", i+1)
			}
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key found (make one with: certkeeper storage keygen)")
	}
	return keys, nil
}

// ReadKeyFile reads a key file (see ParseKeys). A file that others may
// read is refused: it guards every private key in storage.
func ReadKeyFile(name string) ([]*Key, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("storage key file: %w", err)
	}
	if e := fileowner.SecretExposure(name, fi); e != nil {
		return nil, fmt.Errorf("storage key file %s: mode %04o lets %s %s it: %s", name, fi.Mode().Perm(), e.Who, e.Access, e.Fix)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("storage key file: %w", err)
	}
	keys, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("storage key file %s: %w", name, err)
	}
	return keys, nil
}

// Store is a storage.Storage that seals the values holding private keys
// before they reach Storage and opens them after. Locks, List and Delete
// pass through. Its fields must not change once it is in use.
type Store struct {
	// Storage is where sealed values are kept.
	Storage storage.Storage
	// Keys are the storage keys: the first seals, all open. At least one
	// is required.
	Keys []*Key
}

var _ storage.Storage = (*Store)(nil)

// New returns a Store sealing into st with keys.
func New(st storage.Storage, keys []*Key) *Store {
	return &Store{Storage: st, Keys: keys}
}

// IsSealed reports whether value is a sealed value.
func IsSealed(value []byte) bool { return bytes.HasPrefix(value, []byte(magic)) }

// envelope is what follows magic in a sealed value.
type envelope struct {
	KeyID string `json:"kid"`
	Data  []byte `json:"data"` // nonce, then ciphertext and tag
}

// seal encrypts value for key with the first key.
func (s *Store) seal(key string, value []byte) ([]byte, error) {
	if len(s.Keys) == 0 {
		return nil, errors.New("encrypted: no storage key")
	}
	k := s.Keys[0]
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(value)+k.aead.Overhead())
	rand.Read(nonce) // never fails
	data, err := json.Marshal(envelope{KeyID: k.ID, Data: k.aead.Seal(nonce, nonce, value, []byte(key))})
	if err != nil {
		return nil, err
	}
	return append([]byte(magic), data...), nil
}

// open decrypts a sealed value of key. A clear value is returned as it is
// only where values are not sealed (storage.IsSecret is false); elsewhere
// it is refused.
func (s *Store) open(key string, value []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(value, []byte(magic))
	if !ok {
		if storage.IsSecret(key) {
			return nil, fmt.Errorf("encrypted: %s: %w (%w): %s", key, ErrNotSealed, storage.ErrInvalidRecord, rekeyHint)
		}
		return value, nil
	}
	var env envelope
	if err := json.Unmarshal(rest, &env); err != nil {
		return nil, fmt.Errorf("encrypted: %s: damaged sealed value: %w", key, err)
	}
	for _, k := range s.Keys {
		if k.ID != env.KeyID {
			continue
		}
		ns := k.aead.NonceSize()
		if len(env.Data) < ns {
			return nil, fmt.Errorf("encrypted: %s: damaged sealed value", key)
		}
		plain, err := k.aead.Open(nil, env.Data[:ns], env.Data[ns:], []byte(key))
		if err != nil {
			return nil, fmt.Errorf("encrypted: %s: %w (key %s: the value is damaged or was moved from another key)", key, ErrWrongKey, k.ID)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("encrypted: %s: %w (sealed with key %s)", key, ErrWrongKey, env.KeyID)
}

// Load implements storage.Storage, opening sealed values.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.Storage.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.open(key, v)
}

// Store implements storage.Storage, sealing the values of keys for which
// storage.IsSecret is true.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	value, err := s.sealIfSecret(key, value)
	if err != nil {
		return err
	}
	return s.Storage.Store(ctx, key, value)
}

// StoreVolatile implements storage.VolatileStorer: it seals as Store does
// and stores without durability when the wrapped Storage can, else with
// its Store.
func (s *Store) StoreVolatile(ctx context.Context, key string, value []byte) error {
	v, ok := s.Storage.(storage.VolatileStorer)
	if !ok {
		return s.Store(ctx, key, value)
	}
	value, err := s.sealIfSecret(key, value)
	if err != nil {
		return err
	}
	return v.StoreVolatile(ctx, key, value)
}

// sealIfSecret returns value sealed when key is one Sealed names, else
// value as it is.
func (s *Store) sealIfSecret(key string, value []byte) ([]byte, error) {
	if !storage.IsSecret(key) {
		return value, nil
	}
	if err := storage.ValidateKey(key); err != nil {
		return nil, fmt.Errorf("encrypted: store: %w", err)
	}
	return s.seal(key, value)
}

// Delete implements storage.Storage.
func (s *Store) Delete(ctx context.Context, key string) error { return s.Storage.Delete(ctx, key) }

// List implements storage.Storage.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	return s.Storage.List(ctx, prefix)
}

// Lock implements storage.Storage.
func (s *Store) Lock(ctx context.Context, name string) (func(), error) {
	return s.Storage.Lock(ctx, name)
}

// Notify implements storage.Notifier if the wrapped Storage does, and
// otherwise does nothing.
func (s *Store) Notify(ctx context.Context, key string) error {
	return storage.NotifyVia(ctx, s.Storage, key)
}

// Subscribe implements storage.Notifier if the wrapped Storage does;
// otherwise the channel stays silent until ctx is done.
func (s *Store) Subscribe(ctx context.Context) (<-chan string, error) {
	return storage.SubscribeVia(ctx, s.Storage)
}

// CheckHealth implements storage.HealthChecker through the wrapped
// Storage (storage.CheckHealth): whether it answers, not whether the key
// opens what it holds, which Check does once at start.
func (s *Store) CheckHealth(ctx context.Context) error {
	return storage.CheckHealth(ctx, s.Storage)
}

// Check opens one sealed value of each key ID found in storage (at most a
// few hundred values are read), so a wrong key file is reported at start
// rather than at the first handshake or renewal. It also returns an error
// wrapping ErrNotSealed when the private keys it finds are all in clear:
// a storage never encrypted, given a key file, would have every one
// refused (run Rekey first). Clear values beside sealed ones do not fail
// Check: a value planted by a storage writer must not stop every node from
// starting; Load refuses each.
func (s *Store) Check(ctx context.Context) error {
	var keys []string
	for _, prefix := range storage.SecretPrefixes() {
		ks, err := s.Storage.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("encrypted: checking the storage key: %w", err)
		}
		keys = append(keys, ks...)
	}
	seen := map[string]bool{}
	var sealed, clear int
	var firstClear string
	for i, key := range keys {
		if i >= 300 {
			break
		}
		if !storage.IsSecret(key) {
			continue
		}
		v, err := s.Storage.Load(ctx, key)
		if err != nil {
			continue // deleted meanwhile, or unreadable: not the key's fault
		}
		rest, ok := bytes.CutPrefix(v, []byte(magic))
		if !ok {
			if clear++; firstClear == "" {
				firstClear = key
			}
			continue
		}
		sealed++
		var env envelope
		if json.Unmarshal(rest, &env) != nil || seen[env.KeyID] {
			continue
		}
		if _, err := s.open(key, v); err != nil {
			return err
		}
		seen[env.KeyID] = true
	}
	if clear > 0 && sealed == 0 {
		return fmt.Errorf(`encrypted: %w: %d private keys (%s, ...) and none sealed: this storage is not encrypted yet; seal them once with Rekey ("certkeeper storage rekey" with this key file) before using it with the key file`,
			ErrNotSealed, clear, firstClear)
	}
	return nil
}

// RekeyStats says what Rekey did.
type RekeyStats struct {
	Sealed  int // values sealed again with the first key, or sealed for the first time
	Clear   int // of Sealed, the values that were in clear
	Current int // values already sealed with the first key
}

// Rekey seals every value that should be sealed with the first key: those
// sealed with an older key of the file, and clear ones stored before
// encryption was turned on. Once it has run, older keys can be dropped
// from the key file. It is safe to run while nodes serve (each value is
// replaced in one atomic Store), and to run again.
//
// Rekey trusts the clear values it seals: whatever is in clear when it
// runs, planted or not, is sealed and then served. Run it when turning
// encryption on, on a storage no one else writes to.
func (s *Store) Rekey(ctx context.Context) (RekeyStats, error) {
	var st RekeyStats
	if len(s.Keys) == 0 {
		return st, errors.New("encrypted: no storage key")
	}
	for _, prefix := range storage.SecretPrefixes() {
		keys, err := s.Storage.List(ctx, prefix)
		if err != nil {
			return st, fmt.Errorf("encrypted: rekey: %w", err)
		}
		for _, key := range keys {
			if !storage.IsSecret(key) {
				continue
			}
			v, err := s.Storage.Load(ctx, key)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return st, fmt.Errorf("encrypted: rekey: %w", err)
			}
			plain := v // stored in clear before encryption was turned on
			if rest, ok := bytes.CutPrefix(v, []byte(magic)); !ok {
				st.Clear++
			} else {
				var env envelope
				if json.Unmarshal(rest, &env) == nil && env.KeyID == s.Keys[0].ID {
					st.Current++
					continue
				}
				if plain, err = s.open(key, v); err != nil {
					return st, err
				}
			}
			if err := s.Store(ctx, key, plain); err != nil {
				return st, fmt.Errorf("encrypted: rekey: %w", err)
			}
			st.Sealed++
		}
	}
	return st, nil
}
