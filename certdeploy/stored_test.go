package certdeploy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestDeployStored: the certificates in storage (those of the names
// asked for) are deployed; none stored is ErrNothingStored.
func TestDeployStored(t *testing.T) {
	st := filestore.New(t.TempDir())
	d := &Deployer{Format: PEM, Dir: filepath.Join(t.TempDir(), "out")}
	if _, _, err := d.DeployStored(t.Context(), st, nil); !errors.Is(err, ErrNothingStored) {
		t.Fatalf("DeployStored of empty storage = %v, want ErrNothingStored", err)
	}
	ca := &localca.CA{Storage: filestore.New(t.TempDir())}
	for _, name := range []string{"a.test", "b.test"} {
		if _, err := certkeeper.Issue(t.Context(), st, certkeeper.IssueRequest{Names: []string{name}, Issuers: &issuer.Chain{Issuers: []issuer.Issuer{ca}}}); err != nil {
			t.Fatal(err)
		}
	}
	n, changed, err := d.DeployStored(t.Context(), st, []string{"b.test"})
	if err != nil || n != 1 || !changed {
		t.Fatalf("DeployStored(b.test) = %d, %v, %v; want 1, true", n, changed, err)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "b.test", "fullchain.pem")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "a.test")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a.test was deployed too: %v", err)
	}
	if !KnownFormat(Nginx) || KnownFormat("apache") {
		t.Error("KnownFormat disagrees with Formats")
	}
}
