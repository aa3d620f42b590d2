package storage_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestEachCertificate: every record is visited in key order, damaged ones
// with an error wrapping ErrInvalidRecord and their value, only the keys
// match accepts, other keys never; fn returning false stops the loop.
func TestEachCertificate(t *testing.T) {
	ctx := t.Context()
	st := filestore.New(t.TempDir())
	put := func(key string, value []byte) {
		t.Helper()
		if err := st.Store(ctx, key, value); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a.test", "b.test"} {
		key, err := storage.CertificateKey("local", name)
		if err != nil {
			t.Fatal(err)
		}
		data, err := storage.MarshalCertificate(storage.RecordFor(t, []string{name}, name))
		if err != nil {
			t.Fatal(err)
		}
		put(key, data)
	}
	put("certificates/local/c.test.json", []byte("damaged"))
	put("state/limits.json", []byte("{}"))

	type visit struct {
		key   string
		names []string
		bad   bool
	}
	run := func(match func(string) bool, stopAfter int) []visit {
		t.Helper()
		var got []visit
		err := storage.EachCertificate(ctx, st, match, func(key string, value []byte, rec *storage.Certificate, err error) bool {
			v := visit{key: key, bad: err != nil}
			switch {
			case err != nil && (!errors.Is(err, storage.ErrInvalidRecord) || string(value) != "damaged"):
				t.Errorf("EachCertificate: %s: value %q, err %v; want the value and ErrInvalidRecord", key, value, err)
			case err == nil:
				v.names = rec.Names
			}
			got = append(got, v)
			return len(got) < stopAfter
		})
		if err != nil {
			t.Fatalf("EachCertificate = %v", err)
		}
		return got
	}
	all := []visit{
		{"certificates/local/a.test.json", []string{"a.test"}, false},
		{"certificates/local/b.test.json", []string{"b.test"}, false},
		{"certificates/local/c.test.json", nil, true},
	}
	eq := func(a, b visit) bool { return a.key == b.key && a.bad == b.bad && slices.Equal(a.names, b.names) }
	if got := run(nil, 10); !slices.EqualFunc(got, all, eq) {
		t.Errorf("EachCertificate(every key) visited %v, want %v", got, all)
	}
	if got := run(func(k string) bool { return k == all[1].key }, 10); !slices.EqualFunc(got, all[1:2], eq) {
		t.Errorf("EachCertificate(match b.test) visited %v, want %v", got, all[1:2])
	}
	if got := run(nil, 1); !slices.EqualFunc(got, all[:1], eq) {
		t.Errorf("EachCertificate(stop after one) visited %v, want %v", got, all[:1])
	}
}
