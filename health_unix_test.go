//go:build unix

package certkeeper_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/storagetest"
)

// TestHealthStorage: the health check of a filestore answers 200 "ok",
// 503 "storage: permission denied" (no path) while a directory of it
// cannot be written (as one made root's by a command run as root), and
// 200 again once it can; a flood of 1,000 checks costs one probe. As
// root the test runs as nobody, whom the directory's mode keeps out.
func TestHealthStorage(t *testing.T) {
	if testsvc.AsNobody(t) {
		return
	}
	dir := t.TempDir()
	fst := filestore.New(dir)
	if err := fst.Store(t.Context(), "certificates/x/a.test.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	st := &storagetest.Counting{Storage: fst}
	srv := httptest.NewServer(&certkeeper.Health{Storage: st, Every: 100 * time.Millisecond})
	defer srv.Close()
	url := srv.URL + "/healthz"
	if code, body := healthz(t, url); code != 200 || body != "ok\n" {
		t.Fatalf("GET /healthz: %d %q, want 200 ok", code, body)
	}
	sub := filepath.Join(dir, "certificates")
	if err := os.Chmod(sub, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(sub, 0o700) })
	waitHealthz(t, url, 503, "storage: permission denied\n")
	if _, body := healthz(t, url); strings.Contains(body, dir) || strings.Contains(body, "/") {
		t.Errorf("the 503 names a path: %q", body)
	}
	if err := os.Chmod(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	waitHealthz(t, url, 200, "ok\n")

	// A flood, on a check with the default Every (10 s).
	st.Reset()
	flooded := httptest.NewServer(&certkeeper.Health{Storage: st})
	defer flooded.Close()
	flood(t, flooded.URL+"/healthz", 1000, 200)
	if n := st.N(); n != 1 {
		t.Errorf("1,000 health checks made %d storage operations, want 1", n)
	}
}
