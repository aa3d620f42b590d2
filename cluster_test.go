package certkeeper_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/bench/scale/fill"
	"github.com/certkeeper/certkeeper/internal/limit"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/certkeeper/certkeeper/storage/redisstore"
)

// clusterNodes starts n Managers on one standalone Redis; node 0 serves on
// the port Pebble validates tls-alpn-01 on, the others on ports of their
// own, so every order a node other than 0 places is validated through
// node 0.
func clusterNodes(t *testing.T, ca *testca.CA, n int, tune func(*certkeeper.Manager)) []*server {
	t.Helper()
	return clusterNodesOn(t, "redis://"+testsvc.Redis(t).Addr()+"?lease=2s", ca, n, tune)
}

// clusterNodesOn is clusterNodes on the Redis that url names.
func clusterNodesOn(t *testing.T, url string, ca *testca.CA, n int, tune func(*certkeeper.Manager)) []*server {
	t.Helper()
	var nodes []*server
	for i := range n {
		st, err := redisstore.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m := newACMEManager(ca, st, policy.Allowlist("*.cluster.test"))
		if tune != nil {
			tune(m)
		}
		t.Cleanup(func() { m.Close() })
		port := 0
		if i == 0 {
			port = ca.TLSPort()
		}
		nodes = append(nodes, &server{m: m, ca: ca, addr: serveOnPort(t, m, port)})
	}
	return nodes
}

// TestClusterOneOrderPerName: three Managers on one Redis (a standalone
// server, and a 3-master Redis Cluster), handshakes for
// new names on all of them at once: one order per name, one serial per
// name on every node, and orders placed by nodes the CA does not
// validate through succeed (their challenge answers are shared).
func TestClusterOneOrderPerName(t *testing.T) {
	t.Run("standalone", func(t *testing.T) {
		ca := testca.Start(t, testca.Options{})
		oneOrderPerName(t, ca, clusterNodes(t, ca, 3, nil))
	})
	t.Run("cluster", func(t *testing.T) {
		rc := testsvc.RedisCluster(t, 3)
		ca := testca.Start(t, testca.Options{})
		oneOrderPerName(t, ca, clusterNodesOn(t, "redis+cluster://"+strings.Join(rc.Addrs(), ",")+"/?lease=2s", ca, 3, nil))
	})
}

func oneOrderPerName(t *testing.T, ca *testca.CA, nodes []*server) {
	roots := ca.IssuingRootPool(t)
	const names = 8
	serials := make([][]string, names)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range names {
		serials[i] = make([]string, len(nodes))
		for j, s := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("n%d.cluster.test", i)
				leaf, err := s.handshake(t, name, roots)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("node %d, %s: %w", j, name, err))
					return
				}
				serials[i][j] = leaf.SerialNumber.String()
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for i, s := range serials {
		for j := range s {
			if s[j] != s[0] {
				t.Errorf("n%d.cluster.test: node %d serves serial %s, node 0 %s", i, j, s[j], s[0])
			}
		}
	}
	if got := ca.Orders(); got != names {
		t.Errorf("orders = %d, want %d", got, names)
	}
}

// TestClusterOrderLimit: three nodes sharing a budget of 3 orders place 3
// orders in all, however many new names arrive.
func TestClusterOrderLimit(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	var budgetDenied atomic.Int32 // Denied events for the budget's refusals, which the metrics count
	nodes := clusterNodes(t, ca, 3, func(m *certkeeper.Manager) {
		m.Cluster.OrderLimit = 3
		m.Cluster.OrderWindow = time.Minute
		m.OnEvent = func(e certkeeper.Event) {
			if rl, ok := errors.AsType[*limit.RateLimitError](e.Err); e.Kind == certkeeper.Denied && ok && rl.Configured {
				budgetDenied.Add(1)
			}
		}
	})
	roots := ca.IssuingRootPool(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, limited int
	for i := range 12 {
		s := nodes[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.handshake(t, fmt.Sprintf("l%d.cluster.test", i), roots)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else {
				limited++
			}
		}()
	}
	wg.Wait()
	if got := ca.Orders(); got != 3 || ok != 3 {
		t.Errorf("orders = %d, handshakes served = %d; want 3 and 3 (limited: %d)", got, ok, limited)
	}
	if n := int(budgetDenied.Load()); n != limited {
		t.Errorf("%d Denied events for the budget's %d refusals, want one each (an ops trial's metrics counted none)", n, limited)
	}
	// The names held back were refused by the budget, not failed: none
	// is backed off or listed as failing, and asked again each is
	// refused by the budget, from memory (trial 24: they were backed off
	// past the budget's own retry time, and status listed them as
	// failing).
	for i := range 12 {
		_, err := nodes[i%3].m.GetCertificate(&tls.ClientHelloInfo{ServerName: fmt.Sprintf("l%d.cluster.test", i)})
		var rl *limit.RateLimitError
		if err != nil && (errors.Is(err, certkeeper.ErrFailedRecently) || !errors.As(err, &rl)) {
			t.Errorf("l%d.cluster.test again: %v; want the budget's refusal, not a back-off", i, err)
		}
	}
	certs, err := status.Read(t.Context(), nodes[0].m.Storage, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range certs {
		if c.FirstIssue {
			t.Errorf("status lists %s as failing (%s); a budget's refusal is not a failure", c.Names[0], c.LastError)
		}
	}
}

// TestClusterHTTP01Elsewhere: the CA's http-01 request reaches a Manager
// that did not order; it answers from storage, and the order succeeds.
func TestClusterHTTP01Elsewhere(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	st := filestore.New(t.TempDir())
	a := newACMEManager(ca, st, nil)
	t.Cleanup(func() { a.Close() })
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	b := newACMEManager(ca, st, nil)
	b.Issuers[0].(*acmeca.Issuer).ChallengeOrder = []string{acmeca.HTTP01}
	t.Cleanup(func() { b.Close() })
	if err := b.Cert(t.Context(), "h.cluster.test"); err != nil {
		t.Fatalf("ordering through http-01 answered by another Manager: %v", err)
	}
	b.Close() // the answer is removed in the background; Close waits for it
	if keys, _ := st.List(t.Context(), "challenges/"); len(keys) != 0 {
		t.Errorf("shared challenge answers left behind: %v", keys)
	}
}

// TestClusterPeriodicSync: without change notices (a filestore), a
// Manager swaps in a certificate another node stored at its next periodic
// check.
func TestClusterPeriodicSync(t *testing.T) {
	ctx := t.Context()
	st := filestore.New(t.TempDir())
	a := localManager(t, st, nil)
	if err := a.Cert(ctx, "s.cluster.test"); err != nil {
		t.Fatal(err)
	}
	b := localManager(t, st, nil)
	b.Cluster.SyncInterval = 100 * time.Millisecond
	old, err := b.GetCertificate(&tls.ClientHelloInfo{ServerName: "s.cluster.test"})
	if err != nil {
		t.Fatal(err)
	}
	// Another node's renewal: a newer certificate under the same key.
	other := filestore.New(t.TempDir())
	if err := localManager(t, other, nil).Cert(ctx, "s.cluster.test"); err != nil {
		t.Fatal(err)
	}
	keys, err := other.List(ctx, storage.CertificatePrefix(""))
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v; want one certificate", keys, err)
	}
	data, err := other.Load(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Store(ctx, keys[0], data); err != nil {
		t.Fatal(err)
	}
	rec, err := storage.UnmarshalCertificate(keys[0], data)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := rec.Leaf()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := b.GetCertificate(&tls.ClientHelloInfo{ServerName: "s.cluster.test"})
		if err != nil {
			t.Fatal(err)
		}
		if c.Leaf.SerialNumber.Cmp(want.SerialNumber) == 0 {
			break
		}
		if c.Leaf.SerialNumber.Cmp(old.Leaf.SerialNumber) != 0 || time.Now().After(deadline) {
			t.Fatalf("serving serial %s, want the stored %s within 5 s", c.Leaf.SerialNumber, want.SerialNumber)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseEndsClusterGoroutines: the subscriber to Redis change notices
// and the periodic check stop with Close.
func TestCloseEndsClusterGoroutines(t *testing.T) {
	rs := testsvc.Redis(t)
	before := runtime.NumGoroutine()
	st, err := redisstore.Open("redis://" + rs.Addr())
	if err != nil {
		t.Fatal(err)
	}
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	if err := m.Cert(t.Context(), "g.cluster.test"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	st.Close()
	waitGoroutines(t, before)
}

// waitGoroutines waits up to 5 s for the goroutines to be back to before,
// and fails the test with their stacks if they are not.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tcpSwitch forwards TCP connections to a target until it is switched
// off: then it drops every connection and refuses new ones, as an
// unreachable server would, while the server behind it keeps its data.
type tcpSwitch struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards off and conns
	off   bool
	conns map[net.Conn]bool
}

func newTCPSwitch(t *testing.T, target string) *tcpSwitch {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpSwitch{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() {
		ln.Close()
		s.set(true)
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.forward(c)
		}
	}()
	return s
}

func (s *tcpSwitch) addr() string { return s.ln.Addr().String() }

func (s *tcpSwitch) forward(c net.Conn) {
	s.mu.Lock()
	off := s.off
	s.mu.Unlock()
	if off {
		c.Close()
		return
	}
	u, err := net.Dial("tcp", s.target)
	if err != nil {
		c.Close()
		return
	}
	s.mu.Lock()
	s.conns[c], s.conns[u] = true, true
	s.mu.Unlock()
	go func() { io.Copy(u, c); u.Close() }()
	io.Copy(c, u)
	c.Close()
}

// set switches the forwarding off (true) or on (false).
func (s *tcpSwitch) set(off bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.off = off
	if off {
		for c := range s.conns {
			c.Close()
		}
		clear(s.conns)
	}
}

// TestRenewalThroughRedisOutage: with Redis unreachable, a Manager keeps
// serving what it holds and its renewals fail and are retried with
// back-off; once Redis is reachable again the renewal succeeds and is
// stored, nothing lost.
func TestRenewalThroughRedisOutage(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	sw := newTCPSwitch(t, rs.Addr())
	st, err := redisstore.Open("redis://" + sw.addr() + "?lease=2s&timeout=500ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	events := make(chan certkeeper.Event, 100)
	m := &certkeeper.Manager{
		Storage: st,
		Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 8 * time.Second}},
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Renewed || e.Kind == certkeeper.RenewalFailed {
				select {
				case events <- e:
				default:
				}
			}
		},
	}
	t.Cleanup(func() { m.Close() })
	const name = "o.cluster.test"
	if err := m.Cert(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	first, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	sw.set(true)
	var failures []time.Time
	deadline := time.After(20 * time.Second)
	for len(failures) < 2 {
		select {
		case e := <-events:
			if e.Kind == certkeeper.Renewed {
				t.Fatal("renewed while Redis was unreachable")
			}
			if e.Retry.IsZero() || !strings.Contains(e.Err.Error(), "Redis at "+sw.addr()) {
				t.Errorf("renewal failure: retry %v, err %v; want a retry time and an error naming Redis", e.Retry, e.Err)
			}
			failures = append(failures, time.Now())
		case <-deadline:
			t.Fatalf("%d renewal failures within 20 s of Redis going away, want 2", len(failures))
		}
		if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err != nil {
			t.Fatalf("Redis unreachable: the certificate in memory is not served: %v", err)
		}
	}
	t.Logf("renewal retried %s after its first failure", failures[1].Sub(failures[0]).Round(time.Millisecond))
	sw.set(false)
	for {
		select {
		case e := <-events:
			if e.Kind != certkeeper.Renewed {
				continue
			}
			c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
			if err != nil || c.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
				t.Fatalf("after the renewal: %v, serial unchanged: %v", err, err == nil)
			}
			keys, err := st.List(t.Context(), storage.CertificatePrefix(""))
			if err != nil || len(keys) != 1 {
				t.Fatalf("stored certificates: %v, %v", keys, err)
			}
			return
		case <-time.After(30 * time.Second):
			t.Fatal("no renewal within 30 s of Redis coming back")
		}
	}
}

// TestClusterSharedFailureBackoff: a name whose issuance failed on one
// node is refused on another node within seconds (not at the next
// periodic check), without a request to the CA.
func TestClusterSharedFailureBackoff(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	proxy := testca.NewFaultProxy(t, ca)
	url := "redis://" + testsvc.Redis(t).Addr() + "?lease=2s"
	var nodes []*certkeeper.Manager
	for range 2 {
		st, err := redisstore.Open(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		m := &certkeeper.Manager{Policy: policy.Allowlist("*.cluster.test"), Storage: st,
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: proxy.DirectoryURL(), HTTPClient: ca.HTTPClient(),
				Profile: "default", ChallengeOrder: []string{acmeca.TLSALPN01}}}}
		t.Cleanup(func() { m.Close() })
		nodes = append(nodes, m)
	}
	proxy.ServiceUnavailable("new-order", 1000, 0) // every order fails
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Node 1 has read the shared state before node 0's failure.
	if _, err := nodes[1].CertificateFor(ctx, "g.cluster.test", netip.Addr{}); err == nil {
		t.Fatal("g.cluster.test obtained through a CA that refuses every order")
	}
	if _, err := nodes[0].CertificateFor(ctx, "f.cluster.test", netip.Addr{}); err == nil {
		t.Fatal("f.cluster.test obtained through a CA that refuses every order")
	}
	time.Sleep(2100 * time.Millisecond) // limitsShareInterval
	before := proxy.Requests()
	_, err := nodes[1].CertificateFor(ctx, "f.cluster.test", netip.Addr{})
	if err == nil || !strings.Contains(err.Error(), "failed recently") {
		t.Errorf("node 1 for f.cluster.test, which failed on node 0: %v; want a refusal naming the recent failure", err)
	}
	if n := proxy.Requests() - before; n != 0 {
		t.Errorf("node 1 sent %d requests to the CA for a name that failed on node 0 a moment ago, want 0", n)
	}
}

// TestAdoptedRenewalLoadedOnce: two nodes on one Redis hold a certificate
// that one of them renews; the other swaps the new one in and emits one
// Loaded event for it, not two (the swap on the node's notice, and its own
// renewal's re-check of storage after the issue lock, both published it).
func TestAdoptedRenewalLoadedOnce(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	type node struct {
		m      *certkeeper.Manager
		mu     sync.Mutex
		loaded map[time.Time]int // Loaded events by NotAfter
	}
	nodes := make([]*node, 2)
	for i := range nodes {
		st, err := redisstore.Open("redis://" + rs.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		n := &node{loaded: map[time.Time]int{}}
		n.m = &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: 6 * time.Second}},
			OnEvent: func(e certkeeper.Event) {
				if e.Kind == certkeeper.Loaded {
					n.mu.Lock()
					n.loaded[e.NotAfter]++
					n.mu.Unlock()
				}
			}}
		t.Cleanup(func() { n.m.Close() })
		nodes[i] = n
	}
	const name = "twice.cluster.test"
	for _, n := range nodes {
		if err := n.m.Cert(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	serials := map[string]bool{}
	for end := time.Now().Add(14 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, n := range nodes {
			if c, err := n.m.GetCertificate(&tls.ClientHelloInfo{ServerName: name}); err == nil {
				serials[c.Leaf.SerialNumber.String()] = true
			}
		}
	}
	if len(serials) < 3 {
		t.Fatalf("%d certificates served in 14 s with a 6 s lifetime, want renewals", len(serials))
	}
	for i, n := range nodes {
		n.mu.Lock()
		for notAfter, count := range n.loaded {
			if count > 1 {
				t.Errorf("node %d: %d Loaded events for the certificate expiring %s, want 1", i, count, notAfter.Format(time.TimeOnly))
			}
		}
		n.mu.Unlock()
	}
}

// TestClusterLearnsStored: a certificate for two names that another node
// stores after this one started is, through the change notice, one this
// node renews: a handshake here for its second name is served it without
// an order, Stats counts it, and its renewal is scheduled here too (so it
// is renewed if the node that stored it goes away). Before, it was found
// by its first name only, and neither counted nor renewed here, until a
// restart.
func TestClusterLearnsStored(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	stA, stB := openRedis(t, rs.Addr(), "lease=2s"), openRedis(t, rs.Addr(), "lease=2s")
	a, ordered := startedCounting(t, stA, "a.learn.test", "b.learn.test")
	waitSubscribed(t, stA)
	b := localManager(t, stB, nil)
	if err := b.Cert(t.Context(), "a.learn.test", "b.learn.test"); err != nil {
		t.Fatal(err)
	}
	keys, err := stB.List(t.Context(), storage.CertificatePrefix(""))
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v; want node b's certificate", keys, err)
	}
	key := keys[0]
	var when time.Time
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		if when, ok = certkeeper.Scheduled(a, key); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, stored by node b, not scheduled for renewal on node a within 5 s", key)
		}
	}
	var counted bool
	for _, c := range a.Stats().Certificates {
		counted = counted || c.Key == key && !c.InMemory && c.Names[0] == "a.learn.test"
	}
	if !counted {
		t.Errorf("node a's Stats does not count %s, stored by node b", key)
	}
	c := servedStored(t, a, ordered, "a.learn.test", "b.learn.test")
	if !when.After(time.Now()) || when.After(c.Leaf.NotAfter) {
		t.Errorf("renewal scheduled at %s, want between now and the expiry %s", when, c.Leaf.NotAfter)
	}
}

// TestSweepLearnsStored: on a storage without change notices (a shared
// directory), the expiry sweep finds a certificate another node stored
// after this one started and makes it one this node renews, as a notice
// would (TestClusterLearnsStored).
func TestSweepLearnsStored(t *testing.T) {
	st := filestore.New(t.TempDir())
	a, ordered := startedCounting(t, st, "a.sweep.test", "b.sweep.test")
	if err := localManager(t, filestore.New(st.Dir), nil).Cert(t.Context(), "a.sweep.test", "b.sweep.test"); err != nil {
		t.Fatal(err)
	}
	keys, err := st.List(t.Context(), storage.CertificatePrefix(""))
	if err != nil || len(keys) != 1 {
		t.Fatalf("List = %v, %v; want the other node's certificate", keys, err)
	}
	if _, ok := certkeeper.Scheduled(a, keys[0]); ok {
		t.Fatalf("%s scheduled before the sweep: without notices, nothing told node a", keys[0])
	}
	certkeeper.SweepExpired(a, t.Context())
	if _, ok := certkeeper.Scheduled(a, keys[0]); !ok {
		t.Errorf("%s, stored by another node, not scheduled for renewal after the sweep", keys[0])
	}
	servedStored(t, a, ordered, "a.sweep.test", "b.sweep.test")
}

// TestWildcardUnderApexStoredLater: a certificate for a.example and
// *.a.example (certbot's usual one, stored under its apex) that another
// process stored after this node started, on a storage without notices
// (an import into a running proxy's directory), serves a subdomain's
// first handshake with no order: a migration trial's got a certificate of
// its own until the next sweep or restart.
func TestWildcardUnderApexStoredLater(t *testing.T) {
	st := filestore.New(t.TempDir())
	a, ordered := startedCounting(t, st, "apex.test", "*.apex.test")
	if err := localManager(t, filestore.New(st.Dir), nil).Cert(t.Context(), "apex.test", "*.apex.test"); err != nil {
		t.Fatal(err)
	}
	servedStored(t, a, ordered, "*.apex.test", "www.apex.test")
	servedStored(t, a, ordered, "*.apex.test", "api.apex.test")
	c := servedStored(t, a, ordered, "apex.test", "apex.test")
	if !slices.Contains(c.Leaf.DNSNames, "*.apex.test") {
		t.Errorf("apex.test served %v, want the stored certificate with the wildcard", c.Leaf.DNSNames)
	}
}

// waitSubscribed waits, at most 5 s, until a Manager follows the change
// notices of st's Redis (it subscribes once its start-up scan is done).
func waitSubscribed(t *testing.T, st *redisstore.Store) {
	t.Helper()
	channel := redisstore.DefaultPrefix + ".changes"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, err := st.Client.PubSubNumSub(t.Context(), channel).Result()
		if err == nil && n[channel] >= 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Manager subscribed to %s within 5 s: %v %v", channel, n, err)
		}
	}
}

// TestRevokedReplacedAtNotice: a certificate marked revoked in storage
// (MarkRevoked, as RevokeStored and cert revoke do) that a node schedules
// but does not hold in memory is replaced at the mark's change notice,
// as one held is, not at its planned renewal (a library trial measured
// 74 s to over 2 minutes on Redis).
func TestRevokedReplacedAtNotice(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	stA, stB := openRedis(t, rs.Addr(), "lease=2s"), openRedis(t, rs.Addr(), "lease=2s")
	a, _ := startedCounting(t, stA)
	waitSubscribed(t, stA)
	b := localManager(t, stB, nil)
	if err := b.Cert(t.Context(), "rv.notice.test"); err != nil {
		t.Fatal(err)
	}
	b.Close()                                                                        // gone: only node a can replace it
	old, err := b.GetCertificate(&tls.ClientHelloInfo{ServerName: "rv.notice.test"}) // what b held, served after Close
	if err != nil {
		t.Fatal(err)
	}
	key := "certificates/local/rv.notice.test.json"
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, ok := certkeeper.Scheduled(a, key); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not scheduled on node a within 5 s", key)
		}
	}
	if ok, err := certkeeper.MarkRevoked(t.Context(), stB, "local", old.Leaf, "keyCompromise"); !ok || err != nil {
		t.Fatalf("MarkRevoked = %v, %v", ok, err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		data, err := stB.Load(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := storage.UnmarshalCertificate(key, data)
		if err != nil {
			t.Fatal(err)
		}
		if leaf, _ := rec.Leaf(); rec.Revoked == nil && !leaf.Equal(old.Leaf) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked certificate, scheduled on node a but not held there, not replaced within 10 s of its mark")
		}
	}
}

// startedCounting starts a Manager with the local CA on st, allowing
// names, and waits for its start-up scan; the counter counts the
// certificates it obtains.
func startedCounting(t *testing.T, st storage.Storage, names ...string) (*certkeeper.Manager, *atomic.Int32) {
	t.Helper()
	var ordered atomic.Int32
	m := localManager(t, st, policy.Allowlist(names...))
	m.OnEvent = func(e certkeeper.Event) {
		if e.Kind == certkeeper.Obtained {
			ordered.Add(1)
		}
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	certkeeper.WaitRenewalScan(m)
	return m, &ordered
}

// servedStored checks that a handshake on m for second is served the
// certificate another node stored for first and second, with no order.
func servedStored(t *testing.T, m *certkeeper.Manager, ordered *atomic.Int32, first, second string) *tls.Certificate {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: second})
	if err != nil {
		t.Fatal(err)
	}
	if n := ordered.Load(); n != 0 || !slices.Contains(c.Leaf.DNSNames, first) {
		t.Errorf("%s: served %v after %d orders, want the other node's certificate for %s and %s, no order", second, c.Leaf.DNSNames, n, first, second)
	}
	return c
}

// TestRenewalResumesWhenStorageAnswers: a certificate this node renews
// but does not hold, due while Redis is unreachable, is renewed within
// seconds of Redis answering again, not at the next step of the CA's
// backoff (a minute, then 10, then 100, capped only by expiry dates the
// node did not pass on): a cluster trial's certificates stayed expired
// 7.5 minutes after Redis came back, on every node.
func TestRenewalResumesWhenStorageAnswers(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	sw := newTCPSwitch(t, rs.Addr())
	st := openRedis(t, sw.addr(), "lease=2s&timeout=500ms")
	// Two 90-day certificates a day from expiry, past their renewal time:
	// the start-up scan spreads them 3 s apart (the spacing of an order
	// limit of 1,600 an hour), so the second's check comes once Redis is
	// unreachable.
	names := []string{"r1.resume.test", "r2.resume.test"}
	fillLate(t, st, names...)
	events := make(chan certkeeper.Event, 100)
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}},
		Cluster: certkeeper.Cluster{OrderLimit: 1600, OrderWindow: time.Hour},
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Renewed || e.Kind == certkeeper.RenewalFailed {
				events <- e
			}
		}}
	t.Cleanup(func() { m.Close() })
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	certkeeper.WaitRenewalScan(m)
	sw.set(true) // Redis unreachable before the second check (the first may come before)
	// Both checks done, with Redis still unreachable: nothing but its
	// return can bring the failed ones forward.
	failed := map[string]certkeeper.Event{}
	for seen := 0; seen < len(names); seen++ {
		select {
		case e := <-events:
			if e.Kind != certkeeper.RenewalFailed {
				continue // the first check, before Redis went away
			}
			if len(e.Names) == 0 || e.NotAfter.IsZero() || e.Retry.Before(time.Now().Add(40*time.Second)) {
				t.Fatalf("with Redis unreachable: %+v; want a RenewalFailed naming the certificate and its expiry, retried in a minute", e)
			}
			failed[e.Names[0]] = e
		case <-time.After(15 * time.Second):
			t.Fatalf("%d of %d renewal checks within 15 s", seen, len(names))
		}
	}
	sw.set(false)
	back := time.Now()
	for len(failed) > 0 {
		select {
		case e := <-events:
			if e.Kind == certkeeper.Renewed {
				t.Logf("%s renewed %s after Redis answered again", e.Names[0], time.Since(back).Round(time.Millisecond))
				delete(failed, e.Names[0])
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("not renewed within 15 s of Redis answering again: %v", failed)
		}
	}
}

// TestFailingEndsWhenRenewedElsewhere: a node whose renewal of a
// certificate it does not hold failed (its Redis unreachable) stops
// counting it failing once it reads the certificate another node renewed
// meanwhile; before, its Stats (and so certkeeper_certificates_failing
// and renewal_failing_seconds) said failing until its own next renewal
// check, weeks later for a 90-day certificate (cluster trial).
func TestFailingEndsWhenRenewedElsewhere(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	sw := newTCPSwitch(t, rs.Addr())
	stA, stB := openRedis(t, sw.addr(), "lease=2s&timeout=500ms"), openRedis(t, rs.Addr(), "lease=2s&timeout=500ms")
	fillLate(t, stB, "f1.elsewhere.test", "f2.elsewhere.test")
	failedA := make(chan certkeeper.Event, 10)
	a := &certkeeper.Manager{Storage: stA, Issuers: []issuer.Issuer{&localca.CA{Storage: stA}},
		Cluster: certkeeper.Cluster{OrderLimit: 1600, OrderWindow: time.Hour}, // checks 3 s apart
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.RenewalFailed {
				failedA <- e
			}
		}}
	t.Cleanup(func() { a.Close() })
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	certkeeper.WaitRenewalScan(a)
	sw.set(true)
	var failed string
	select {
	case e := <-failedA:
		failed = e.Names[0]
	case <-time.After(15 * time.Second):
		t.Fatal("node a's renewal check did not fail within 15 s of its Redis going away")
	}
	b := localManager(t, stB, nil) // node b renews both at its start
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	key, _ := storage.CertificateKey("local", failed)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		data, err := stB.Load(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			NotAfter time.Time `json:"not_after"`
		}
		if json.Unmarshal(data, &rec) == nil && time.Until(rec.NotAfter) > 2*24*time.Hour {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b did not renew %s within 15 s", failed)
		}
	}
	sw.set(false)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var failures int
		var notAfter time.Time
		for _, c := range a.Stats().Certificates {
			if c.Key == key {
				failures, notAfter = c.Failures, c.NotAfter
			}
		}
		if failures == 0 && time.Until(notAfter) > 2*24*time.Hour {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node a, 20 s after its Redis came back: %s has %d failures, expiry %s; want none, and node b's renewed certificate", failed, failures, notAfter)
		}
	}
}

// countedRefusals stands for a CA whose validation cannot reach the names
// (with the local CA's ID, the issuer of the records filled for it): it
// refuses every order and counts them, for a test of what the Managers do
// per failure, as refusingCA is.
type countedRefusals struct {
	*localca.CA
	orders *atomic.Int32
}

func (c countedRefusals) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	c.orders.Add(1)
	return nil, &issuer.Error{Issuer: c.ID(), Names: req.Names, Err: errors.New("urn:ietf:params:acme:error:connection: the CA could not connect")}
}

// TestRenewalFailsOncePerCluster: two nodes renewing the same certificate
// whose renewal fails place one order between them, not one each: the
// node that fails marks the stored record before it releases the issue
// lock, and the other backs off as if it had failed (a cluster trial: 10
// failed orders in 31 s for one name on two nodes).
func TestRenewalFailsOncePerCluster(t *testing.T) {
	t.Parallel()
	rs := testsvc.Redis(t)
	var orders atomic.Int32
	failures := make(chan certkeeper.Event, 10)
	var nodes []*certkeeper.Manager
	for i := range 2 {
		st := openRedis(t, rs.Addr(), "lease=2s")
		if i == 0 {
			fillLate(t, st, "once.cluster.test")
		}
		m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{countedRefusals{&localca.CA{Storage: st}, &orders}},
			OnEvent: func(e certkeeper.Event) {
				if e.Kind == certkeeper.RenewalFailed {
					failures <- e
				}
			}}
		t.Cleanup(func() { m.Close() })
		nodes = append(nodes, m)
	}
	for _, m := range nodes {
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
	}
	var errs []string
	for range nodes {
		select {
		case e := <-failures:
			errs = append(errs, e.Err.Error())
		case <-time.After(15 * time.Second):
			t.Fatalf("%d of 2 nodes tried the renewal within 15 s", len(errs))
		}
	}
	if n := orders.Load(); n != 1 || !strings.Contains(strings.Join(errs, "\n"), "the renewal failed on another node just now") {
		t.Errorf("%d orders for one failing renewal on two nodes, want 1; their errors:\n%s", n, strings.Join(errs, "\n"))
	}
}

// openRedis opens a Store on the Redis at addr, with query as its URL's
// options, closed when the test ends.
func openRedis(t *testing.T, addr, query string) *redisstore.Store {
	t.Helper()
	st, err := redisstore.Open("redis://" + addr + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fillLate stores, for the local CA, a 90-day certificate for each name,
// a day from expiry: past its renewal time.
func fillLate(t *testing.T, st storage.Storage, names ...string) {
	t.Helper()
	ca, err := fill.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Fill(t.Context(), st, fill.Spec{IssuerID: "local", Names: names, NotBefore: time.Now().Add(-89 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
}

// TestRenewalLeavesBusyLock: a renewal whose issue lock another node holds
// (renewing it) leaves it to that node after renewalLockTry, rather than
// holding a renewal worker until the lock is free: with the locks of four
// due certificates held elsewhere (four workers), a fifth, due after them,
// is renewed while they are held. Before, the cluster renewed one
// certificate at a time however many nodes it had (a trial's backlog let
// certificates expire). Nothing is logged as a failure, and once the
// other node lets go without renewing, this one renews them before they
// expire.
func TestRenewalLeavesBusyLock(t *testing.T) {
	t.Parallel()
	st := filestore.New(t.TempDir())
	var logs testsvc.Buffer
	var mu sync.Mutex
	renewed := map[string]time.Time{}
	const lifetime = 10 * time.Second // due between about 4.5 and 5.5 s
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st, Lifetime: lifetime}},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		OnEvent: func(e certkeeper.Event) {
			if e.Kind == certkeeper.Renewed {
				mu.Lock()
				if _, ok := renewed[e.Names[0]]; !ok {
					renewed[e.Names[0]] = time.Now()
				}
				mu.Unlock()
			}
		}}
	defer m.Close()
	other := filestore.New(st.Dir) // the other node
	var unlocks []func()
	issued := time.Now()
	for i := range 4 {
		name := fmt.Sprintf("n%d.busy.test", i)
		if err := m.Cert(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		unlock, err := other.Lock(t.Context(), storage.IssueLock(name))
		if err != nil {
			t.Fatal(err)
		}
		unlocks = append(unlocks, unlock)
	}
	time.Sleep(1500 * time.Millisecond) // n4 is due after the other four
	if err := m.Cert(t.Context(), "n4.busy.test"); err != nil {
		t.Fatal(err)
	}
	count := func(names ...string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, name := range names {
			if _, ok := renewed[name]; ok {
				n++
			}
		}
		return n
	}
	if !waitFor(time.Until(issued.Add(9*time.Second)), func() bool { return count("n4.busy.test") == 1 }) {
		t.Fatalf("n4.busy.test not renewed %s after the first issuance while the other four's locks were held elsewhere:\n%s",
			time.Since(issued).Round(time.Millisecond), logs.String())
	}
	for _, unlock := range unlocks {
		unlock()
	}
	if n := count("n0.busy.test", "n1.busy.test", "n2.busy.test", "n3.busy.test"); n != 0 {
		t.Errorf("%d certificates renewed while another node held their locks", n)
	}
	all := func() bool { return count("n0.busy.test", "n1.busy.test", "n2.busy.test", "n3.busy.test") == 4 }
	if !waitFor(time.Until(issued.Add(lifetime)), all) {
		mu.Lock()
		t.Errorf("renewed before expiry: %v, want all five", renewed)
		mu.Unlock()
	}
	if strings.Contains(logs.String(), "renewal failed") {
		t.Errorf("a renewal left to another node is logged as a failure:\n%s", logs.String())
	}
}
