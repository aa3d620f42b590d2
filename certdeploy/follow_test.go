package certdeploy

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestFollow: a certificate the Manager obtains after Follow started is
// deployed without another call, and stop returns once the goroutine has
// ended.
func TestFollow(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	dir := t.TempDir()
	d := &Deployer{Format: PEM, Dir: dir}
	stop := d.Follow(t.Context(), m, st)
	if err := m.Cert(t.Context(), "follow.test"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "follow.test", "fullchain.pem")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(file); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not deployed within 10 s of the certificate being obtained", file)
		}
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("stop did not return within 10 s")
	}
}
