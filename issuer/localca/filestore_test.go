package localca

import (
	"sync"
	"testing"

	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestFilestore runs the CA on the real file backend: separate Stores on
// one directory stand for separate processes, each with its own CA.
func TestFilestore(t *testing.T) {
	dir := t.TempDir()
	const n = 4
	cas := make([]*CA, n)
	for i := range cas {
		cas[i] = newCA(filestore.New(dir))
	}
	certs := make([]*issuer.Certificate, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, req := request(t, issuer.ECDSAP256, "a.test", "127.0.0.1")
			certs[i], errs[i] = cas[i].Issue(t.Context(), req)
		})
	}
	wg.Wait()
	root, err := cas[0].Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Issue #%d = %v", i, errs[i])
		}
		verify(t, root, certs[i], []string{"a.test", "127.0.0.1"})
		if r, err := cas[i].Root(t.Context()); err != nil || !r.Equal(root) {
			t.Errorf("Root() #%d = %v, %v, want %q", i, r.Subject, err, root.Subject)
		}
	}
	keys, err := filestore.New(dir).List(t.Context(), "localca/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{storage.LocalCAKey("intermediate"), storage.LocalCAKey("root")}
	if len(keys) != 2 || keys[0] != want[0] || keys[1] != want[1] {
		t.Errorf("List(localca/) = %q, want %q", keys, want)
	}
}
