package storage_test

import (
	"testing"

	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestCurrentLeaf: the stored leaf is returned for exactly its names, in
// their order, and nil for other names, another issuer, or nothing stored.
func TestCurrentLeaf(t *testing.T) {
	ctx := t.Context()
	st := filestore.New(t.TempDir())
	names := []string{"a.test", "www.a.test"}
	rec := storage.RecordFor(t, names, names...)
	key, err := storage.CertificateKey("local", names[0])
	if err != nil {
		t.Fatal(err)
	}
	data, err := storage.MarshalCertificate(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, key, data); err != nil {
		t.Fatal(err)
	}
	if leaf := storage.CurrentLeaf(ctx, st, "local", names); leaf == nil || leaf.SerialNumber.Int64() != 7 {
		t.Errorf("CurrentLeaf(%q) = %v, want the stored leaf", names, leaf)
	}
	for _, tc := range []struct {
		issuer string
		names  []string
	}{
		{"local", []string{"a.test"}},
		{"local", []string{"a.test", "www.a.test", "b.test"}},
		{"other", names},
		{"local", []string{"b.test"}},
		{"local", nil},
	} {
		if leaf := storage.CurrentLeaf(ctx, st, tc.issuer, tc.names); leaf != nil {
			t.Errorf("CurrentLeaf(%s, %q) = a leaf, want nil", tc.issuer, tc.names)
		}
	}
}
