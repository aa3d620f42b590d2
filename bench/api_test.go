package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

const apiToken = "bench-token-0123456789abcdef"

// apiServers starts the certificate API (token auth, audit log to a file,
// a certificate in memory) and a plain net/http handler answering a body
// of the same size, both on loopback.
func apiServers(tb testing.TB) (apiURL, plainURL string) {
	tb.Helper()
	st := filestore.New(tb.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	tb.Cleanup(func() { m.Close() })
	if err := m.Cert(context.Background(), "a.bench.test"); err != nil {
		tb.Fatal(err)
	}
	audit, err := os.OpenFile(filepath.Join(tb.TempDir(), "audit.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	aw := certserver.NewAuditWriter(audit, nil) // as certkeeper server --audit-log writes it
	tb.Cleanup(func() { aw.Close(); audit.Close() })
	h := &certserver.Handler{Manager: m, Tokens: []string{apiToken}, Audit: slog.New(slog.NewJSONHandler(aw, nil))}
	apiURL = serveHTTP(tb, h) + "/v1/certificates/a.bench.test"
	body, err := get(http.DefaultClient, apiURL)
	if err != nil {
		tb.Fatal(err)
	}
	plain := make([]byte, len(body))
	copy(plain, body)
	plainURL = serveHTTP(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(plain)
	}))
	return apiURL, plainURL
}

func serveHTTP(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func get(c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = io.ErrUnexpectedEOF
	}
	return body, err
}

// load sends GETs to url from workers keep-alive clients for d and
// returns the requests answered per second.
func load(tb testing.TB, url string, workers int, d time.Duration) float64 {
	tb.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var n atomic.Int64
	var failed atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if _, err := get(c, url); err != nil {
					failed.Store(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	return float64(n.Load()) / d.Seconds()
}

// TestAPIThroughput compares a cached GET /v1/certificates/{name} with a
// token (auth, lookup, the rendered answer, an audit line written to a
// file) with a plain net/http handler answering a body of the same size,
// measured in the same run, interleaved: the API must reach 0.8× the
// plain handler's requests per second.
func TestAPIThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput measurement skipped in -short mode")
	}
	if raceEnabled {
		t.Skip("a throughput ratio means nothing under the race detector; scripts/test.sh measures it in its own step")
	}
	apiURL, plainURL := apiServers(t)
	const rounds, workers = 15, 8
	const d = 300 * time.Millisecond
	load(t, apiURL, workers, d/2) // warm up both
	load(t, plainURL, workers, d/2)
	// Each round measures both back to back; the median of the rounds'
	// ratios is robust against other work on the machine.
	var api, plain, ratios []float64
	for range rounds {
		p := load(t, plainURL, workers, d)
		a := load(t, apiURL, workers, d)
		plain, api, ratios = append(plain, p), append(api, a), append(ratios, a/p)
	}
	slices.Sort(api)
	slices.Sort(plain)
	slices.Sort(ratios)
	ratio := ratios[rounds/2]
	t.Logf("cached GET with token: %.0f req/s; plain handler, same body size: %.0f req/s; ratio %.2f (median of %d rounds of %s, %d clients)",
		api[rounds/2], plain[rounds/2], ratio, rounds, d, workers)
	if ratio < 0.8 {
		t.Errorf("API throughput ratio %.2f, want ≥ 0.8", ratio)
	}
}

// BenchmarkAPI is a cached GET /v1/certificates/{name} with a token over
// loopback HTTP; BenchmarkAPIBaseline the plain handler with the same
// body size.
func BenchmarkAPI(b *testing.B) {
	apiURL, _ := apiServers(b)
	benchGet(b, apiURL)
}

// BenchmarkAPIBaseline: see BenchmarkAPI.
func BenchmarkAPIBaseline(b *testing.B) {
	_, plainURL := apiServers(b)
	benchGet(b, plainURL)
}

func benchGet(b *testing.B, url string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := get(c, url); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
