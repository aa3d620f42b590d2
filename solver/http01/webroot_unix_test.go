//go:build unix

package http01

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mholt/acmez/v3/acme"
)

// TestWebrootUmask: under a root umask of 077 (a hardened host, a systemd
// unit's UMask=0077) the directories and the token are still 0755 and
// 0644, so that the web server's workers, another user, can read the
// token. The umask is the process's: no test of this package runs in
// parallel with this one.
func TestWebrootUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	w := &Webroot{Dir: root}
	chal := acme.Challenge{Type: "http-01", Token: "tok_U", KeyAuthorization: "tok_U.thumb", Identifier: acme.Identifier{Value: "a.test"}}
	if err := w.Present(t.Context(), chal); err != nil {
		t.Fatal(err)
	}
	defer w.CleanUp(t.Context(), chal)
	for path, want := range map[string]os.FileMode{
		filepath.Join(root, ".well-known"):                            0o755 | os.ModeDir,
		filepath.Join(root, ".well-known", "acme-challenge"):          0o755 | os.ModeDir,
		filepath.Join(root, ".well-known", "acme-challenge", "tok_U"): 0o644,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s under umask 077: %v, %v; want mode %v", path, fi.Mode(), err, want)
		}
	}
}
