package encrypted_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/encrypted"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/storagetest"
)

func mustKeys(t *testing.T, lines ...[]byte) []*encrypted.Key {
	t.Helper()
	keys, err := encrypted.ParseKeys(bytes.Join(lines, nil))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestConformance: the wrapper is a Storage like any other.
func TestConformance(t *testing.T) {
	t.Parallel()
	key := encrypted.GenerateKey()
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return encrypted.New(&filestore.Store{Dir: t.TempDir(), LeaseTTL: time.Second}, mustKeys(t, key))
	})
}

const secretPEM = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"

// TestSealed: values holding private keys rest sealed, others in clear;
// every value reads back as stored; a value moved to another key does not
// open.
func TestSealed(t *testing.T) {
	ctx := t.Context()
	raw := filestore.New(t.TempDir())
	s := encrypted.New(raw, mustKeys(t, encrypted.GenerateKey()))
	values := map[string]bool{
		"certificates/acme/a.test.json": true,
		"accounts/acme/default.key":     true,
		"localca/root.json":             true,
		"accounts/acme/default.json":    false,
		"state/limits.json":             false,
	}
	for key := range values {
		if err := s.Store(ctx, key, []byte(secretPEM)); err != nil {
			t.Fatal(err)
		}
	}
	for key, sealed := range values {
		got, err := s.Load(ctx, key)
		if err != nil || string(got) != secretPEM {
			t.Errorf("Load(%q) = %q, %v; want the stored value", key, got, err)
		}
		rest, err := raw.Load(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if inClear := bytes.Contains(rest, []byte("secret")); inClear == sealed {
			t.Errorf("%s at rest: %q; sealed = %v", key, rest, sealed)
		}
	}
	// A sealed value copied under another key does not open.
	v, _ := raw.Load(ctx, "certificates/acme/a.test.json")
	if err := raw.Store(ctx, "certificates/acme/b.test.json", v); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "certificates/acme/b.test.json"); !errors.Is(err, encrypted.ErrWrongKey) {
		t.Errorf("a sealed value moved to another key: err = %v, want ErrWrongKey", err)
	}
}

// TestStoreVolatile: StoreVolatile seals what Store seals, and passes the
// volatile write on to the wrapped Storage.
func TestStoreVolatile(t *testing.T) {
	ctx := t.Context()
	raw := filestore.New(t.TempDir())
	s := encrypted.New(raw, mustKeys(t, encrypted.GenerateKey()))
	var _ storage.VolatileStorer = s
	for key, sealed := range map[string]bool{
		"certificates/acme/a.test.json": true,
		"challenges/tls-alpn-01/a.test": false,
	} {
		if err := s.StoreVolatile(ctx, key, []byte(secretPEM)); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Load(ctx, key); err != nil || string(got) != secretPEM {
			t.Errorf("Load(%q) = %q, %v; want the stored value", key, got, err)
		}
		rest, err := raw.Load(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if inClear := bytes.Contains(rest, []byte("secret")); inClear == sealed {
			t.Errorf("%s at rest: %q; sealed = %v", key, rest, sealed)
		}
	}
}

// TestRotation: with the key file "new, old", values sealed with the old
// key open; Rekey seals them all with the new one, after which the new key
// alone opens everything, and the old key alone fails Check.
func TestRotation(t *testing.T) {
	ctx := t.Context()
	raw := filestore.New(t.TempDir())
	oldKey, newKey := encrypted.GenerateKey(), encrypted.GenerateKey()
	old := encrypted.New(raw, mustKeys(t, oldKey))
	for _, key := range []string{"certificates/acme/a.test.json", "certificates/acme/b.test.json", "accounts/acme/default.key"} {
		if err := old.Store(ctx, key, []byte(secretPEM)); err != nil {
			t.Fatal(err)
		}
	}
	// A value stored before encryption was turned on.
	if err := raw.Store(ctx, "localca/root.json", []byte(secretPEM)); err != nil {
		t.Fatal(err)
	}
	onlyNew := encrypted.New(raw, mustKeys(t, newKey))
	if err := onlyNew.Check(ctx); !errors.Is(err, encrypted.ErrWrongKey) {
		t.Fatalf("Check with a key file lacking the sealing key: %v, want ErrWrongKey", err)
	}
	both := encrypted.New(raw, mustKeys(t, newKey, oldKey))
	if err := both.Check(ctx); err != nil {
		t.Fatalf("Check with new and old keys: %v", err)
	}
	st, err := both.Rekey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Sealed != 4 || st.Current != 0 {
		t.Errorf("Rekey = %+v, want 4 sealed", st)
	}
	if st, err := both.Rekey(ctx); err != nil || st.Sealed != 0 || st.Current != 4 {
		t.Errorf("Rekey again = %+v, %v; want 4 current", st, err)
	}
	if err := onlyNew.Check(ctx); err != nil {
		t.Fatalf("Check with the new key after Rekey: %v", err)
	}
	for _, key := range []string{"certificates/acme/a.test.json", "accounts/acme/default.key", "localca/root.json"} {
		if v, err := onlyNew.Load(ctx, key); err != nil || string(v) != secretPEM {
			t.Errorf("after rotation Load(%q) = %q, %v", key, v, err)
		}
		if v, _ := raw.Load(ctx, key); bytes.Contains(v, []byte("secret")) {
			t.Errorf("after Rekey %s is in clear", key)
		}
	}
	if err := encrypted.New(raw, mustKeys(t, oldKey)).Check(ctx); !errors.Is(err, encrypted.ErrWrongKey) {
		t.Errorf("Check with only the old key after Rekey: %v, want ErrWrongKey", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, append([]byte("# storage key\n"), encrypted.GenerateKey()...), 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, err := encrypted.ReadKeyFile(good); err != nil || len(keys) != 1 || len(keys[0].ID) != 16 {
		t.Errorf("ReadKeyFile = %v, %v", keys, err)
	}
	// In this process's group, as a Kubernetes secret reaches a service
	// (root-owned 0440, the pod's fsGroup): read (a container trial's was
	// refused).
	if err := os.Chmod(good, 0o440); err != nil {
		t.Fatal(err)
	}
	if keys, err := encrypted.ReadKeyFile(good); err != nil || len(keys) != 1 {
		t.Errorf("ReadKeyFile(0440 in this process's group) = %v, %v", keys, err)
	}
	k := encrypted.GenerateKey()
	for name, tc := range map[string]struct {
		data []byte
		mode os.FileMode
		want string
	}{
		"readable":       {encrypted.GenerateKey(), 0o644, "chmod 600"},
		"group-writable": {encrypted.GenerateKey(), 0o660, "lets group "},
		"short":          {[]byte("c2hvcnQ=\n"), 0o600, "line 1"},
		"empty":          {[]byte("# nothing\n"), 0o600, "no key"},
		"twice":          {append(bytes.Clone(k), k...), 0o600, "same key"},
	} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, tc.data, tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, tc.mode); err != nil {
			t.Fatal(err)
		}
		if _, err := encrypted.ReadKeyFile(f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ReadKeyFile error = %v, want one saying %q", name, err, tc.want)
		}
	}
}

// TestUnsealedRefused: with a key file, a private key stored in clear —
// planted by anyone who can write storage, to be served or used as the
// account's key — is refused by Load, naming its key and saying how to
// seal clear values when turning encryption on. Values that hold no
// secret still read in clear. A storage whose private keys are all in
// clear was never encrypted: Check says to run rekey, and Rekey seals it.
func TestUnsealedRefused(t *testing.T) {
	ctx := t.Context()
	keys := mustKeys(t, encrypted.GenerateKey())
	raw := filestore.New(t.TempDir())
	s := encrypted.New(raw, keys)
	if err := s.Store(ctx, "certificates/acme/b.test.json", []byte(secretPEM)); err != nil {
		t.Fatal(err)
	}
	const planted = "-----BEGIN PRIVATE KEY-----\nplanted\n-----END PRIVATE KEY-----\n"
	for _, key := range []string{"certificates/acme/a.test.json", "accounts/acme/default.key", "localca/root.json"} {
		if err := raw.Store(ctx, key, []byte(planted)); err != nil {
			t.Fatal(err)
		}
		v, err := s.Load(ctx, key)
		if err == nil {
			t.Errorf("Load(%q) of a value stored in clear = %q, nil; want it refused", key, v)
			continue
		}
		if !errors.Is(err, storage.ErrInvalidRecord) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "storage rekey") {
			t.Errorf("Load(%q) of a value stored in clear: %v; want ErrInvalidRecord naming the key and storage rekey", key, err)
		}
	}
	if err := raw.Store(ctx, "accounts/acme/default.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Load(ctx, "accounts/acme/default.json"); err != nil || string(v) != "{}" {
		t.Errorf("Load of an account record = %q, %v; want it read in clear", v, err)
	}
	// A few planted values beside sealed ones must not stop every node
	// from starting: Check passes, Load refuses them one by one.
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check of a storage with sealed values and planted clear ones = %v, want nil", err)
	}

	// Never encrypted: every private key in clear.
	plain := filestore.New(t.TempDir())
	for _, key := range []string{"certificates/acme/a.test.json", "localca/root.json"} {
		if err := plain.Store(ctx, key, []byte(secretPEM)); err != nil {
			t.Fatal(err)
		}
	}
	es := encrypted.New(plain, keys)
	if err := es.Check(ctx); err == nil || !strings.Contains(err.Error(), "storage rekey") {
		t.Errorf("Check of a storage never encrypted = %v, want an error saying to run storage rekey", err)
	}
	st, err := es.Rekey(ctx)
	if err != nil || st.Sealed != 2 {
		t.Fatalf("Rekey of a storage never encrypted = %+v, %v; want 2 sealed", st, err)
	}
	if err := es.Check(ctx); err != nil {
		t.Errorf("Check after Rekey = %v", err)
	}
	if v, err := es.Load(ctx, "localca/root.json"); err != nil || string(v) != secretPEM {
		t.Errorf("Load after Rekey = %q, %v", v, err)
	}
}
