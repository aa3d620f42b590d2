// Command scale measures a certkeeper Manager serving many stored
// certificates (issue 16): it fills a filestore with n certificates (ECDSA
// P-256 leaves under a two-certificate chain, written directly, see
// package fill), starts a Manager with CacheSize -cache on it and a TLS
// listener, and reports
//
//   - the time from start to the first TLS handshake for a stored name;
//
//   - how long the start-up renewal scan took;
//
//   - the heap per cached certificate and per evicted name, by the method
//     of issue 16: one process, runtime.GC() twice, then HeapAlloc; the
//     delta over N names divided by N, cached and evicted names measured
//     separately (the names are served through GetCertificate, the
//     handshake path without the TLS crypto);
//
//   - the heap in use after serving every name twice, and VmRSS;
//
//   - cold (name loaded from storage) and hot (name in memory) TLS
//     handshake rates over loopback, the median of -rounds paired rounds;
//
//   - the time and allocation of a /metrics scrape (every certificate
//     the Manager renews counts, in memory or not);
//
//   - the time and heap growth of reading the status of every certificate
//     (status.Read, what certkeeper status does).
//
//     go run ./bench/scale -n 100000
//
// Results are recorded in docs/performance.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/bench/scale/fill"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

func main() {
	n := flag.Int("n", 100_000, "stored certificates")
	cacheSize := flag.Int("cache", 10_000, "Manager.CacheSize")
	rounds := flag.Int("rounds", 5, "paired cold/hot handshake rounds")
	perRound := flag.Int("handshakes", 300, "TLS handshakes per round and kind")
	conns := flag.Int("conns", 2, "concurrent client connections")
	dir := flag.String("dir", "", "storage directory (default: a new one under /dev/shm or the temp dir, removed at the end)")
	flag.Parse()
	if err := run(*n, *cacheSize, *rounds, *perRound, *conns, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(n, cacheSize, rounds, perRound, conns int, dir string) error {
	if cacheSize >= n {
		return fmt.Errorf("-cache %d must be below -n %d, or nothing is evicted", cacheSize, n)
	}
	if perRound*rounds > n-cacheSize {
		return fmt.Errorf("-handshakes × -rounds (%d) must not exceed -n minus -cache (%d): each cold handshake needs a name not in memory", perRound*rounds, n-cacheSize)
	}
	if dir == "" {
		d, err := scratchDir()
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	ctx := context.Background()
	st := filestore.New(dir)
	ca, names, err := fillStorage(ctx, st, n, dir)
	if err != nil {
		return err
	}

	h0 := heapAlloc()
	scanned := make(chan time.Duration, 1)
	logger := slog.New(&watchHandler{msg: "renewal schedule rebuilt from storage", found: scanned})
	start := time.Now()
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, CacheSize: cacheSize, Logger: logger}
	defer m.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go serve(tls.NewListener(ln, m.TLSConfig()))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root)
	addr := ln.Addr().String()
	if err := handshake(addr, names[n/2], roots); err != nil {
		return err
	}
	fmt.Printf("first handshake for a stored name: %s after start\n", time.Since(start).Round(time.Millisecond))
	select {
	case d := <-scanned:
		fmt.Printf("renewal schedule rebuilt in %s\n", d.Round(time.Millisecond))
	case <-time.After(10 * time.Minute):
		return errors.New("the renewal scan did not end within 10 minutes")
	}
	if err := measureHeap(m, names, cacheSize, h0); err != nil {
		return err
	}
	if err := measureRates(addr, names, cacheSize, rounds, perRound, conns, roots); err != nil {
		return err
	}
	if err := measureScrape(m, n); err != nil {
		return err
	}
	return measureStatus(ctx, st)
}

// scratchDir makes a storage directory, on /dev/shm when there is one.
func scratchDir() (string, error) {
	base := os.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		base = "/dev/shm"
	}
	return os.MkdirTemp(base, "certkeeper-scale-")
}

// fillStorage writes n certificates into st and returns their CA and names.
func fillStorage(ctx context.Context, st *filestore.Store, n int, dir string) (*fill.CA, []string, error) {
	ca, err := fill.NewCA()
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.scale.test", i)
	}
	start := time.Now()
	if err := ca.Fill(ctx, st, fill.Spec{IssuerID: (&localca.CA{}).ID(), Names: names, OnDemand: true}); err != nil {
		return nil, nil, err
	}
	fmt.Printf("filled %d certificates in %s (%s)\n", n, time.Since(start).Round(time.Millisecond), dir)
	return ca, names, nil
}

// measureHeap serves every name twice through GetCertificate and reports
// the heap per scheduled, cached and evicted name (h0: the heap before
// the Manager started).
func measureHeap(m *certkeeper.Manager, names []string, cacheSize int, h0 int64) error {
	n := len(names)
	h1 := heapAlloc() // every name scheduled, one loaded
	serveAll := func(names []string) error {
		for _, name := range names {
			if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err != nil {
				return fmt.Errorf("GetCertificate(%q): %w", name, err)
			}
		}
		return nil
	}
	if err := serveAll(names[:cacheSize]); err != nil {
		return err
	}
	h2 := heapAlloc()
	if err := serveAll(names[cacheSize:]); err != nil {
		return err
	}
	h3 := heapAlloc()
	if err := serveAll(names); err != nil { // second pass
		return err
	}
	h4 := heapAlloc()
	scheduled := float64(h1-h0) / float64(n)
	fmt.Printf("heap per stored name, scheduled only: %.0f B\n", scheduled)
	fmt.Printf("heap per cached certificate: %.0f B\n", float64(h2-h1)/float64(cacheSize))
	fmt.Printf("heap per evicted name: %.0f B\n", scheduled+float64(h3-h2)/float64(n-cacheSize))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("after every name twice: HeapAlloc %.1f MB, HeapInuse %.1f MB, VmRSS %s\n",
		float64(h4)/1e6, float64(ms.HeapInuse)/1e6, vmRSS())
	return nil
}

// measureRates reports cold and hot TLS handshake rates in paired rounds.
// Cold names were not served since the first pass, so the second evicted
// them; hot names are the last ones served, in memory.
func measureRates(addr string, names []string, cacheSize, rounds, perRound, conns int, roots *x509.CertPool) error {
	n := len(names)
	cold := names[:n-cacheSize]
	hot := make([]string, perRound)
	for i := range hot {
		hot[i] = names[n-1-i%(cacheSize/2)]
	}
	var ratios, coldRates, hotRates []float64
	for r := range rounds {
		c, err := rate(addr, cold[r*perRound:(r+1)*perRound], roots, conns)
		if err != nil {
			return fmt.Errorf("cold round %d: %w", r, err)
		}
		h, err := rate(addr, hot, roots, conns)
		if err != nil {
			return fmt.Errorf("hot round %d: %w", r, err)
		}
		coldRates, hotRates, ratios = append(coldRates, c), append(hotRates, h), append(ratios, c/h)
		fmt.Printf("round %d: cold %.0f/s, hot %.0f/s, cold/hot %.2f\n", r+1, c, h, c/h)
	}
	fmt.Printf("median of %d rounds: cold %.0f/s, hot %.0f/s, cold/hot %.2f\n", rounds, median(coldRates), median(hotRates), median(ratios))
	return nil
}

// measureScrape reports the time and allocation of a /metrics scrape,
// which must count all n certificates as managed.
func measureScrape(m *certkeeper.Manager, n int) error {
	h := metrics.Handler(m)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	if want := fmt.Sprintf("\ncertkeeper_certificates_managed %d\n", n); !strings.Contains(rec.Body.String(), want) {
		return fmt.Errorf("the /metrics scrape lacks %q", strings.TrimSpace(want))
	}
	fmt.Printf("/metrics scrape: %s, %.1f MB allocated, certkeeper_certificates_managed %d\n",
		took.Round(time.Millisecond), float64(after.TotalAlloc-before.TotalAlloc)/1e6, n)
	return nil
}

// measureStatus reports the time and heap of reading every certificate's
// status, as certkeeper status does.
func measureStatus(ctx context.Context, st *filestore.Store) error {
	hs := heapAlloc()
	start := time.Now()
	certs, err := status.Read(ctx, st, time.Now())
	if err != nil {
		return fmt.Errorf("reading status: %w", err)
	}
	took := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("status of %d certificates: %s, heap +%.1f MB while held, VmRSS %s\n",
		len(certs), took.Round(time.Millisecond), float64(int64(ms.HeapAlloc)-hs)/1e6, vmRSS())
	runtime.KeepAlive(certs)
	return nil
}

// heapAlloc is the heap in use after two collections.
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// vmRSS is the process's resident set size from /proc, or "n/a".
func vmRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}

// serve completes the handshake of each connection and closes it.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			_ = c.(*tls.Conn).Handshake()
		}()
	}
}

// handshake makes one full TLS 1.3 handshake for name (no resumption) and
// checks the certificate.
func handshake(addr, name string, roots *x509.CertPool) error {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS13})
	if err != nil {
		return fmt.Errorf("handshake for %s: %w", name, err)
	}
	return c.Close()
}

// rate makes one handshake per name over conns connections at once and
// returns handshakes per second.
func rate(addr string, names []string, roots *x509.CertPool, conns int) (float64, error) {
	work := make(chan string)
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				if err := handshake(addr, name, roots); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(len(names)) / time.Since(start).Seconds(), nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// watchHandler discards logs but reports, once, how long the Manager's
// renewal scan took (its "took" attribute) when the message msg comes;
// warnings and errors go to stderr.
type watchHandler struct {
	msg   string
	found chan time.Duration
	once  sync.Once
}

func (h *watchHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *watchHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		fmt.Fprintln(os.Stderr, r.Level, r.Message)
	}
	if r.Message != h.msg {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "took" {
			h.once.Do(func() { h.found <- a.Value.Duration() })
		}
		return true
	})
	return nil
}

func (h *watchHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *watchHandler) WithGroup(string) slog.Handler      { return h }
