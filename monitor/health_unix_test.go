//go:build unix

package monitor

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/storagetest"
)

// TestHealthz: the metrics and status listeners answer GET and HEAD
// /healthz without a token: 200 "ok" while the Manager's storage
// answers, 503 "storage: permission denied" while a directory of it
// cannot be written, 200 again once it can. A listener without a token
// still answers only a loopback Host (DNS rebinding), /metrics and the
// status page still want their tokens, and a flood of /healthz costs at
// most one storage probe per Every. As root the test runs as nobody,
// whom the directory's mode keeps out.
func TestHealthz(t *testing.T) {
	if testsvc.AsNobody(t) {
		return
	}
	const mtok = "metrics-0123456789"
	dir := t.TempDir()
	fst := filestore.New(dir)
	if err := fst.Store(t.Context(), "certificates/x/a.test.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	statusAddr := "127.0.0.1:" + strconv.Itoa(testsvc.FreePort(t))
	mon := New(Config{MetricsAddr: metricsAddr, MetricsToken: mtok, StatusAddr: statusAddr})
	st := &storagetest.Counting{Storage: fst}
	m := &certkeeper.Manager{Storage: mon.Storage(st), OnEvent: mon.Observe}
	defer m.Close()
	const every = 200 * time.Millisecond
	m.Health().Every = every
	if err := mon.Start(m, st); err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	ask := func(method, addr, host, path string) (int, string) {
		t.Helper()
		return request(t, method, "http://"+addr+path, host, "")
	}
	for _, tt := range []struct {
		method, addr, host, path string
		want                     int
	}{
		{"GET", metricsAddr, metricsAddr, "/healthz", 200},
		{"HEAD", metricsAddr, metricsAddr, "/healthz", 200},
		{"GET", metricsAddr, "probe.example", "/healthz", 200}, // a token listener: any Host, as a kubelet's
		{"POST", metricsAddr, metricsAddr, "/healthz", 405},
		{"GET", metricsAddr, metricsAddr, "/metrics", 401},
		{"GET", statusAddr, statusAddr, "/healthz", 200},
		{"HEAD", statusAddr, "localhost", "/healthz", 200},
		{"GET", statusAddr, "rebind.attacker.example", "/healthz", 421},
		{"GET", statusAddr, statusAddr, "/status.json", 200},
	} {
		if got, body := ask(tt.method, tt.addr, tt.host, tt.path); got != tt.want {
			t.Errorf("%s %s%s with Host %s: %d %q, want %d", tt.method, tt.addr, tt.path, tt.host, got, body, tt.want)
		}
	}
	// The metrics and the status page say whether the storage answers (an
	// ops trial's full disk showed every certificate fine there, and no
	// gauge moved). A first scrape starts the Manager, whose scan of the
	// storage is done before the flood below counts storage operations.
	healthy := func() string {
		_, body := request(t, "GET", "http://"+metricsAddr+"/metrics", "", mtok)
		for line := range strings.Lines(body) {
			if strings.HasPrefix(line, "certkeeper_storage_healthy ") {
				return strings.TrimSpace(line)
			}
		}
		return ""
	}
	if got := healthy(); got != "certkeeper_storage_healthy 1" {
		t.Errorf("storage answering: metric %q, want certkeeper_storage_healthy 1", got)
	}
	time.Sleep(300 * time.Millisecond)
	sub := filepath.Join(dir, "certificates")
	if err := os.Chmod(sub, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(sub, 0o700) })
	waitFor := func(addr string, code int, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, body := ask("GET", addr, addr, "/healthz")
			if got == code && body == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s/healthz: %d %q, want %d %q", addr, got, body, code, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(metricsAddr, 503, "storage: permission denied\n")
	waitFor(statusAddr, 503, "storage: permission denied\n")
	if got, page := healthy(), func() string { _, b := ask("GET", statusAddr, statusAddr, "/"); return b }(); got != "certkeeper_storage_healthy 0" ||
		!strings.Contains(page, "The storage fails its health check") {
		t.Errorf("storage failing: metric %q, want certkeeper_storage_healthy 0, and the status page says it: %v", got, strings.Contains(page, "fails its health check"))
	}
	if err := os.Chmod(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(metricsAddr, 200, "ok\n")
	waitFor(statusAddr, 200, "ok\n")
	if got, page := healthy(), func() string { _, b := ask("GET", statusAddr, statusAddr, "/"); return b }(); got != "certkeeper_storage_healthy 1" ||
		strings.Contains(page, "The storage fails its health check") {
		t.Errorf("storage back: metric %q, want certkeeper_storage_healthy 1, and no warning on the page", got)
	}

	// 1,000 requests, 20 at a time, half on each listener.
	st.Reset()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	for i := range 1000 {
		addr := metricsAddr
		if i%2 == 1 {
			addr = statusAddr
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Connections dialed but never used would hold Close up for 5 s.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if n, most := st.N(), int64(elapsed/every)+2; n > most {
		t.Errorf("1,000 /healthz in %v made %d storage operations, want at most %d (one per %v)", elapsed, n, most, every)
	}
}
