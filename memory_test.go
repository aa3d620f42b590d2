package certkeeper_test

import (
	"crypto/tls"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/bench/scale/fill"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// Memory bounds per name (issue 16), checked by TestBoundedCache and
// reported by bench/scale.
const (
	maxBytesPerEvicted = 300      // key, renewal time, last-seen time, primary name and dates
	maxBytesPerCached  = 8 * 1024 // certificate, key, parsed leaf
)

// heapAlloc is the heap in use after two collections (the method of issue
// 16: the second collection frees what the first one's finalizers let go).
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// fastDir is a directory for a storage that is filled with thousands of
// records: on tmpfs when there is one, where a durable write costs no
// disk flush.
func fastDir(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dir, err := os.MkdirTemp("/dev/shm", "certkeeper-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// TestBoundedCache: memory is bounded by CacheSize, not by the names ever
// served. With n stored certificates (10,000) and CacheSize n/20, handshakes for
// every name (each evicted name reloads from storage) leave at most
// maxBytesPerEvicted on the heap per evicted name — its key, renewal time
// and last-seen time, never its certificate — and maxBytesPerCached per
// cached certificate. Measured in this process as issue 16 says: two
// collections, then HeapAlloc; the delta over the names, per name.
func TestBoundedCache(t *testing.T) {
	n := 10_000
	if raceEnabled || testing.Short() {
		n = 2_000
	}
	cacheSize := n / 20
	st := filestore.New(fastDir(t))
	ca, err := fill.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.bounded.test", i)
	}
	if err := ca.Fill(t.Context(), st, fill.Spec{IssuerID: (&localca.CA{}).ID(), Names: names, OnDemand: true}); err != nil {
		t.Fatal(err)
	}

	h0 := heapAlloc()
	// No policy: everything must come from storage.
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, CacheSize: cacheSize}
	t.Cleanup(func() { m.Close() })
	certkeeper.WaitRenewalScan(m)
	h1 := heapAlloc() // every name scheduled for renewal, none loaded
	handshake := func(name string) {
		c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatalf("GetCertificate(%q): %v", name, err)
		}
		if c.Leaf.DNSNames[0] != name {
			t.Fatalf("GetCertificate(%q) served %v", name, c.Leaf.DNSNames)
		}
	}
	for _, name := range names[:cacheSize] {
		handshake(name)
	}
	h2 := heapAlloc() // cacheSize certificates in memory
	for _, name := range names[cacheSize:] {
		handshake(name)
	}
	h3 := heapAlloc() // still cacheSize in memory, n-cacheSize evicted
	if got := certkeeper.CacheLen(m); got > cacheSize {
		t.Errorf("cache holds %d certificates, want ≤ %d", got, cacheSize)
	}

	scheduled := float64(h1-h0) / float64(n)
	cached := float64(h2-h1) / float64(cacheSize)
	evicted := scheduled + float64(h3-h2)/float64(n-cacheSize)
	t.Logf("%d names, CacheSize %d: %.0f B per stored name scheduled, %.0f B per cached certificate, %.0f B per evicted name; heap %.1f MB",
		n, cacheSize, scheduled, cached, evicted, float64(h3)/1e6)
	if evicted > maxBytesPerEvicted {
		t.Errorf("heap per evicted name = %.0f B, want ≤ %d: something still holds evicted certificates", evicted, maxBytesPerEvicted)
	}
	if cached > maxBytesPerCached {
		t.Errorf("heap per cached certificate = %.0f B, want ≤ %d", cached, maxBytesPerCached)
	}
	runtime.KeepAlive(m)
}

// TestRedisMissOneGet: a handshake for a stored name that is not in memory
// costs one storage round trip, one GET, against a real Redis: over 1,000
// misses, INFO commandstats counts 1,000 GETs and no other data command.
func TestRedisMissOneGet(t *testing.T) {
	rs, st := redisStorage(t)
	const misses, cacheSize = 1000, 100
	ca, err := fill.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, misses)
	for i := range names {
		names[i] = fmt.Sprintf("m%d.redis.test", i)
	}
	if err := ca.Fill(t.Context(), st, fill.Spec{IssuerID: (&localca.CA{}).ID(), Names: names, OnDemand: true}); err != nil {
		t.Fatal(err)
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}, CacheSize: cacheSize,
		Cluster: certkeeper.Cluster{SyncInterval: -1}} // no periodic check during the count
	t.Cleanup(func() { m.Close() })
	certkeeper.WaitRenewalScan(m)

	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	if err := rc.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err != nil {
			t.Fatalf("GetCertificate(%q): %v", name, err)
		}
	}
	info, err := rc.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	onlyGets(t, info, misses, "cache misses")
}

// onlyGets checks INFO commandstats (reset before what is measured): want
// GETs for want of what, and no other data command.
func onlyGets(t *testing.T, info string, want int, what string) {
	t.Helper()
	getsWithin(t, info, want, want, want, what)
}

// getsWithin checks INFO commandstats (reset before what is measured):
// between least and most GETs for n of what, and no other data command.
func getsWithin(t *testing.T, info string, least, most, n int, what string) {
	t.Helper()
	calls := commandCalls(info)
	t.Logf("commands during %d %s: %v", n, what, calls)
	if calls["get"] < least || calls["get"] > most {
		t.Errorf("%d GETs for %d %s, want %d to %d", calls["get"], n, what, least, most)
	}
	for cmd, c := range calls {
		switch base, _, _ := strings.Cut(cmd, "|"); base {
		case "get", "config", "info", "subscribe", "ping", "client", "hello":
		default:
			t.Errorf("%d %s commands during %s, want none", c, cmd, what)
		}
	}
}

// commandCalls parses INFO commandstats ("cmdstat_get:calls=3,usec=...").
func commandCalls(info string) map[string]int {
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		v, err := strconv.Atoi(n)
		if err == nil {
			calls[strings.TrimPrefix(name, "cmdstat_")] = v
		}
	}
	return calls
}

// TestRenewalsSpreadAtStart: certificates found past their renewal time
// at start, never asked for by a handshake, are renewed (and not kept in
// memory afterwards) at three quarters of the Cluster.OrderLimit budget,
// not all at once. Issue 16 asks for 2,000 certificates at 20 a minute
// renewing 10 to 20 a minute; this is the same budget on a shorter clock:
// 60 certificates at 20 per 6 s renew 10 to 20 in each 6 s.
func TestRenewalsSpreadAtStart(t *testing.T) {
	const overdueCerts, limit, window = 60, 20, 6 * time.Second
	st := filestore.New(fastDir(t))
	ca, err := fill.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, overdueCerts)
	for i := range names {
		names[i] = fmt.Sprintf("o%d.spread.test", i)
	}
	// 80 days into 90: past two thirds of the lifetime, due since day 64.5.
	now := time.Now()
	spec := fill.Spec{IssuerID: (&localca.CA{}).ID(), Names: names,
		NotBefore: now.Add(-80 * 24 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour)}
	if err := ca.Fill(t.Context(), st, spec); err != nil {
		t.Fatal(err)
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Cluster: certkeeper.Cluster{OrderLimit: limit, OrderWindow: window}}
	t.Cleanup(func() { m.Close() })
	events, stop := m.Watch()
	defer stop()
	start := time.Now()
	certkeeper.WaitRenewalScan(m)
	var counts [3]int
	deadline := time.After(time.Duration(len(counts)) * window)
	for done := false; !done; {
		select {
		case e := <-events:
			if e.Kind != certkeeper.Renewed {
				continue
			}
			if i := int(time.Since(start) / window); i < len(counts) {
				counts[i]++
			}
		case <-deadline:
			done = true
		}
	}
	t.Logf("renewals in each %s: %v (budget %d)", window, counts, limit)
	// Renewed without a handshake asking for them: loaded, renewed,
	// stored and dropped, not held in memory. Renewals go on past the
	// deadline (60 certificates, 45 in three windows), and one in flight
	// holds its certificate until it is stored: the cache must be empty
	// between two of them (they are 0.4 s apart), not at one instant.
	n := certkeeper.CacheLen(m)
	for wait := time.Now().Add(5 * time.Second); n != 0 && time.Now().Before(wait); n = certkeeper.CacheLen(m) {
		time.Sleep(5 * time.Millisecond)
	}
	if n != 0 {
		t.Errorf("%d renewed certificates held in memory for 5 s, want 0 (no handshake asked for them)", n)
	}
	for i, c := range counts {
		if c < limit/2 || c > limit {
			t.Errorf("%d renewals in window %d, want between %d and %d", c, i, limit/2, limit)
		}
	}
}

// TestRedisNoticesForOthersCostNothing: change notices for certificates
// this node does not hold in memory cost it no storage round trip, however
// many certificates other nodes renew: 1,000 notices for stored names it
// never served, then one for the name it holds, give exactly one GET
// (notices arrive in order, so the last one's GET shows the others were
// handled).
func TestRedisNoticesForOthersCostNothing(t *testing.T) {
	rs := testsvc.Redis(t)
	st, err := redisstore.Open("redis://" + rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := fill.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 1001)
	for i := range names {
		names[i] = fmt.Sprintf("c%d.notice.test", i)
	}
	id := (&localca.CA{}).ID()
	if err := ca.Fill(t.Context(), st, fill.Spec{IssuerID: id, Names: names}); err != nil {
		t.Fatal(err)
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Cluster: certkeeper.Cluster{SyncInterval: -1}}
	t.Cleanup(func() { m.Close() })
	certkeeper.WaitRenewalScan(m)
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: names[0]}); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rc.Close()
	// The subscription starts with the first certificate held.
	for i := 0; ; i++ {
		n, err := rc.PubSubNumSub(t.Context(), redisstore.DefaultPrefix+".changes").Result()
		if err == nil && n[redisstore.DefaultPrefix+".changes"] > 0 {
			break
		}
		if i == 100 {
			t.Fatalf("the Manager did not subscribe to change notices: %v %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := rc.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(names[1:], names[0]) {
		key, _ := storage.CertificateKey(id, name)
		if err := st.Notify(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	var calls map[string]int
	for i := 0; i < 100; i++ {
		info, err := rc.Info(t.Context(), "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		if calls = commandCalls(info); calls["get"] > 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // any late GET would show now
	info, err := rc.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls = commandCalls(info)
	t.Logf("commands during 1,001 notices: %v", calls)
	if calls["get"] != 1 {
		t.Errorf("%d GETs for 1,000 notices about certificates not held and one about the one held, want 1", calls["get"])
	}
}
