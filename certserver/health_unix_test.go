//go:build unix

package certserver_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/storagetest"
)

// TestHealthzStorage: /healthz, on the API and on the plain-HTTP
// listener beside it (ChallengesOnly), answers 200 "ok" while the
// storage answers, 503 "storage: permission denied" while a directory of
// it cannot be written (every issuance would fail there), and 200 again
// once it can; the 503s are counted as healthz requests. A flood of
// /healthz reads the storage at most once per Health.Every. As root the
// test runs as nobody, whom the directory's mode keeps out.
func TestHealthzStorage(t *testing.T) {
	if testsvc.AsNobody(t) {
		return
	}
	dir := t.TempDir()
	st := filestore.New(dir)
	counted := &storagetest.Counting{Storage: st}
	m := &certkeeper.Manager{Policy: policy.Allowlist("a.test"), Storage: counted, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	const every = 200 * time.Millisecond
	m.Health().Every = every
	h := &certserver.Handler{Manager: m, Tokens: []string{token1}}
	api, plain := httptest.NewServer(h), httptest.NewServer(h.ChallengesOnly())
	defer api.Close()
	defer plain.Close()
	if resp, body := get(t, api.URL+"/v1/certificates/a.test", token1); resp.StatusCode != 200 {
		t.Fatalf("GET a.test: %d %s", resp.StatusCode, body)
	}
	waitFor := func(base string, code int, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, body := get(t, base+"/healthz", "")
			if resp.StatusCode == code && string(body) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s/healthz: %d %q, want %d %q", base, resp.StatusCode, body, code, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(api.URL, 200, "ok\n")
	waitFor(plain.URL, 200, "ok\n")
	sub := filepath.Join(dir, "certificates")
	if err := os.Chmod(sub, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(sub, 0o700) })
	waitFor(api.URL, 503, "storage: permission denied\n")
	waitFor(plain.URL, 503, "storage: permission denied\n")
	found := false
	for _, c := range h.Requests() {
		found = found || c.Endpoint == "healthz" && c.Code == 503
	}
	if !found {
		t.Errorf("the 503s of /healthz are not counted: %+v", h.Requests())
	}
	if err := os.Chmod(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(api.URL, 200, "ok\n")
	waitFor(plain.URL, 200, "ok\n")

	// 1,000 requests, 20 at a time, half on each listener.
	counted.Reset()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := range 1000 {
		base := api.URL
		if i%2 == 1 {
			base = plain.URL
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if resp, err := http.Get(base + "/healthz"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n, most := counted.N(), int64(time.Since(start)/every)+2; n > most {
		t.Errorf("1,000 /healthz made %d storage operations, want at most %d (one per %v)", n, most, every)
	}
}
