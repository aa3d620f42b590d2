package migrate

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/certkeeper/certkeeper/issuer/localca"
)

// TestTrustedRoots: the local CA's root in storage is trusted, extra PEM
// without certificates is refused.
func TestTrustedRoots(t *testing.T) {
	st := mapStore{}
	pool, err := TrustedRoots(t.Context(), st, nil)
	if err != nil {
		t.Fatalf("TrustedRoots without a local CA = %v", err)
	}
	root, err := (&localca.CA{Storage: st}).Root(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
		t.Fatal("a local CA created afterwards is trusted")
	}
	if pool, err = TrustedRoots(t.Context(), st, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		t.Errorf("the stored local CA root does not verify against TrustedRoots: %v", err)
	}
	if _, err := TrustedRoots(t.Context(), st, []byte("no certificates here")); !errors.Is(err, ErrNoRoots) {
		t.Errorf("TrustedRoots of extra PEM holding no certificate = %v, want ErrNoRoots", err)
	}
}
