package certkeeper_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// server is a Manager serving TLS on the port Pebble validates
// tls-alpn-01 on, so on-demand issuance works end to end.
type server struct {
	m    *certkeeper.Manager
	ca   *testca.CA
	addr string
}

func newACMEManager(ca *testca.CA, st storage.Storage, pol policy.Policy) *certkeeper.Manager {
	return &certkeeper.Manager{
		Policy:  pol,
		Storage: st,
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			DirectoryURL: ca.DirectoryURL(),
			HTTPClient:   ca.HTTPClient(),
			Profile:      "default",
			// Only tls-alpn-01: this test's TLS listener is on Pebble's TLSPort.
			ChallengeOrder: []string{acmeca.TLSALPN01},
		}},
	}
}

// serve runs m's TLSConfig on ca's TLS port until the test ends.
func serve(t *testing.T, m *certkeeper.Manager, ca *testca.CA) *server {
	t.Helper()
	return &server{m: m, ca: ca, addr: serveOnPort(t, m, ca.TLSPort())}
}

// handshake connects with SNI name and returns the served leaf.
func (s *server) handshake(t *testing.T, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", s.addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestOnDemandIssuance(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	st := filestore.New(t.TempDir())
	s := serve(t, newACMEManager(ca, st, policy.Allowlist("a.test", "*.b.test")), ca)
	roots := ca.IssuingRootPool(t)

	leaf, err := s.handshake(t, "a.test", roots)
	if err != nil {
		t.Fatalf("first handshake for a.test: %v", err)
	}
	if ca.Orders() != 1 {
		t.Errorf("orders = %d, want 1", ca.Orders())
	}
	again, err := s.handshake(t, "a.test", roots)
	if err != nil || !again.Equal(leaf) {
		t.Fatalf("second handshake: %v (same certificate: %v)", err, err == nil && again.Equal(leaf))
	}
	if ca.Orders() != 1 {
		t.Errorf("orders after a cached handshake = %d, want 1", ca.Orders())
	}

	// A name outside the allowlist fails and places no order.
	if _, err := s.handshake(t, "evil.test", roots); err == nil {
		t.Error("handshake for a name outside the allowlist succeeded")
	}
	if ca.Orders() != 1 {
		t.Errorf("orders after a denied name = %d, want 1", ca.Orders())
	}

	// A restart on the same storage serves the same certificate, no order.
	s.m.Close()
	m2 := newACMEManager(ca, st, policy.Allowlist("a.test"))
	ln2 := serveOn(t, m2)
	leaf2, err := handshakeAddr(ln2, "a.test", roots)
	if err != nil {
		t.Fatal(err)
	}
	if leaf2.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after a restart the serial is %s, want %s", leaf2.SerialNumber, leaf.SerialNumber)
	}
	if ca.Orders() != 1 {
		t.Errorf("orders after a restart = %d, want 1", ca.Orders())
	}
}

// TestConcurrentFirstHandshakes: 20 handshakes at once for one new name
// make exactly one order, and all see one serial.
func TestConcurrentFirstHandshakes(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	s := serve(t, newACMEManager(ca, filestore.New(t.TempDir()), policy.Allowlist("c.test")), ca)
	roots := ca.IssuingRootPool(t)
	var wg sync.WaitGroup
	serials := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leaf, err := s.handshake(t, "c.test", roots)
			errs[i] = err
			if err == nil {
				serials[i] = leaf.SerialNumber.String()
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		if serials[i] != serials[0] {
			t.Errorf("handshake %d saw serial %s, handshake 0 %s", i, serials[i], serials[0])
		}
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want exactly 1", n)
	}
}

// TestUnknownNamesFlood: 1,000 distinct names nobody allowed place no
// order.
func TestUnknownNamesFlood(t *testing.T) {
	ca := testca.Start(t, testca.Options{})
	s := serve(t, newACMEManager(ca, filestore.New(t.TempDir()), policy.Allowlist("a.test")), ca)
	denied := 0
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rssBefore := rssBytes()
	for i := range 1000 {
		if _, err := s.handshake(t, fmt.Sprintf("n%d.unknown.test", i), nil); err != nil {
			denied++
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if denied != 1000 {
		t.Errorf("%d of 1000 unknown names were refused, want all", denied)
	}
	if rssBefore > 0 && !raceEnabled {
		if grew := rssBytes() - rssBefore; grew > 10<<20 {
			t.Errorf("1,000 unknown names grew RSS by %d bytes, want < 10 MB", grew)
		} else {
			t.Logf("RSS growth after 1,000 unknown names: %d KiB", grew>>10)
		}
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 10<<20 {
		t.Errorf("1,000 unknown names grew the heap by %d bytes, want < 10 MB", grew)
	} else {
		t.Logf("heap growth after 1,000 unknown names: %d KiB", grew>>10)
	}
	if n := ca.Orders(); n != 0 {
		t.Errorf("unknown names placed %d orders, want 0", n)
	}
}

func TestNoPolicy(t *testing.T) {
	m := &certkeeper.Manager{Storage: filestore.New(t.TempDir())}
	defer m.Close()
	err := m.Serve()
	if !errors.Is(err, certkeeper.ErrNoPolicy) {
		t.Fatalf("Serve() = %v, want ErrNoPolicy", err)
	}
	want := `no names allowed: set Policy, e.g. policy.Allowlist("example.com")`
	if err.Error() != want {
		t.Errorf("Serve() error = %q, want %q", err, want)
	}
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); !errors.Is(err, certkeeper.ErrNoPolicy) {
		t.Errorf("GetCertificate with no policy = %v, want ErrNoPolicy", err)
	}
}

// TestNilFieldsRefused: a nil issuer (in Issuers or a rule's) and a typed
// nil Storage are configuration errors from Start and every use, naming
// the field, not a panic at the first handshake; Start after Close is
// ErrClosed.
func TestNilFieldsRefused(t *testing.T) {
	for _, tt := range []struct {
		what string
		m    *certkeeper.Manager
		want string
	}{
		{"nil issuer", &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Issuers: []issuer.Issuer{nil}}, "Manager.Issuers[0] is nil"},
		{"typed nil issuer", &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Issuers: []issuer.Issuer{&localca.CA{}, (*acmeca.Issuer)(nil)}},
			"Manager.Issuers[1] is nil"},
		{"rule's nil issuer", &certkeeper.Manager{Storage: filestore.New(t.TempDir()),
			Rules: []certkeeper.NameRule{{Pattern: "a.test", Issuers: []issuer.Issuer{nil}}}}, "Manager.Rules[0].Issuers[0] is nil"},
		{"typed nil storage", &certkeeper.Manager{Storage: (*filestore.Store)(nil)}, "Manager.Storage is a nil *filestore.Store"},
		// An allowlist with a pattern that is no name: every name was
		// refused, said only at the first handshake (newcomer trial).
		{"allowlist typo", &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Policy: policy.Allowlist("a.test", "https://b.test")},
			`Manager.Policy: `},
		// Wildcards that cannot work: every handshake under them failed,
		// with Start's nil (newcomer trial).
		{"wildcard without a DNS solver", &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Wildcards: []string{"*.a.test"},
			Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: "https://127.0.0.1:9/dir"}}},
			"Manager.Wildcards[0] *.a.test: none of its issuers can validate a wildcard"},
		{"wildcard that is none", &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Wildcards: []string{"a.test"}, Issuers: []issuer.Issuer{&localca.CA{}}},
			`Manager.Wildcards[0] "a.test": want *.ZONE`},
		// A field an issuer checks itself: a typo that failed every order,
		// after an order at the CA (newcomer trial).
		{"challenge order typo", &certkeeper.Manager{Storage: filestore.New(t.TempDir()), Issuers: []issuer.Issuer{
			&acmeca.Issuer{DirectoryURL: "https://127.0.0.1:9/dir", ChallengeOrder: []string{"http"}}}},
			`Manager.Issuers[0]: acmeca: ChallengeOrder "http": unknown challenge type: use http-01, tls-alpn-01, dns-01, dns-persist-01; did you mean http-01?`},
	} {
		t.Run(tt.what, func(t *testing.T) {
			if tt.m.Policy == nil {
				tt.m.Policy = policy.Allowlist("a.test")
			}
			defer tt.m.Close()
			if err := tt.m.Start(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start() = %v, want an error naming %q", err, tt.want)
			}
			if _, err := tt.m.GetCertificate(&tls.ClientHelloInfo{ServerName: "a.test"}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("GetCertificate = %v, want the configuration error", err)
			}
		})
	}
	m := localManager(t, filestore.New(t.TempDir()), policy.Allowlist("a.test"))
	m.Close()
	if err := m.Start(); !errors.Is(err, certkeeper.ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
}

// localManager is a Manager on the local CA: no network, fast issuance.
func localManager(t *testing.T, st storage.Storage, pol policy.Policy) *certkeeper.Manager {
	t.Helper()
	m := &certkeeper.Manager{Policy: pol, Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestPolicySeesClient: the policy's decision for a handshake's new name
// carries the handshake's client address (policy.Client), which AskURL
// shares its questions by; a name asked for through CertificateFor carries
// the address given.
func TestPolicySeesClient(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{}
	pol := policy.Func(func(ctx context.Context, name string) error {
		addr, ok := policy.Client(ctx)
		mu.Lock()
		defer mu.Unlock()
		seen[name] = fmt.Sprint(addr, ok)
		return nil
	})
	m := localManager(t, filestore.New(t.TempDir()), pol)
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", serveOn(t, m),
		&tls.Config{ServerName: "h.test", InsecureSkipVerify: true}) // only the policy's view is tested
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if _, err := m.CertificateFor(t.Context(), "api.test", netip.MustParseAddr("192.0.2.9")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := seen["h.test"]; got != "127.0.0.1 true" {
		t.Errorf("the policy's client for a handshake from 127.0.0.1 = %q, want 127.0.0.1", got)
	}
	if got := seen["api.test"]; got != "192.0.2.9 true" {
		t.Errorf("the policy's client for CertificateFor(…, 192.0.2.9) = %q, want 192.0.2.9", got)
	}
}

func TestWildcardAndDefaultName(t *testing.T) {
	st := filestore.New(t.TempDir())
	m := localManager(t, st, nil)
	if err := m.Cert(t.Context(), "*.a.test", "a.test"); err != nil {
		t.Fatal(err)
	}
	m.DefaultName = "a.test"
	for _, hello := range []*tls.ClientHelloInfo{{ServerName: "x.a.test"}, {ServerName: "a.test"}, {ServerName: ""}} {
		c, err := m.GetCertificate(hello)
		if err != nil {
			t.Fatalf("GetCertificate(%q): %v", hello.ServerName, err)
		}
		if !strings.Contains(strings.Join(c.Leaf.DNSNames, ","), "*.a.test") {
			t.Errorf("GetCertificate(%q) served %v, want the *.a.test certificate", hello.ServerName, c.Leaf.DNSNames)
		}
	}
	// A fresh Manager finds the stored wildcard for a subdomain.
	m2 := localManager(t, st, nil)
	c, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "y.a.test"})
	if err != nil || c.Leaf.DNSNames[0] != "*.a.test" {
		t.Errorf("stored wildcard for y.a.test: %v", err)
	}
	// Two labels deep is not covered by a wildcard.
	if _, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: "z.y.a.test"}); err == nil {
		t.Error("z.y.a.test was served by *.a.test")
	}
}

func TestGetCertificateCachedAllocs(t *testing.T) {
	m := localManager(t, filestore.New(t.TempDir()), nil)
	if err := m.Cert(t.Context(), "a.test"); err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "a.test", SupportedProtos: []string{"h2", "http/1.1"}}
	if allocs := testing.AllocsPerRun(1000, func() {
		if _, err := m.GetCertificate(hello); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("GetCertificate for a cached name allocates %v times, want 0", allocs)
	}
}

func BenchmarkGetCertificateCached(b *testing.B) {
	st := filestore.New(b.TempDir())
	m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&localca.CA{Storage: st}}}
	defer m.Close()
	if err := m.Cert(context.Background(), "a.test"); err != nil {
		b.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "a.test"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.GetCertificate(hello); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// serveOn starts m on a free loopback port (no challenges needed).
func serveOn(t *testing.T, m *certkeeper.Manager) string {
	t.Helper()
	return serveOnPort(t, m, 0)
}

func handshakeAddr(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// BenchmarkBaselineMapLookup is the floor GetCertificate is compared with
// in docs/performance.md: a bare sync.Map lookup of the same name.
func BenchmarkBaselineMapLookup(b *testing.B) {
	var m sync.Map
	m.Store("a.test", &tls.Certificate{})
	name := "a.test"
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := m.Load(name); !ok {
				b.Fatal("missing")
			}
		}
	})
}

// rssBytes is the process's resident set size on Linux (0 elsewhere).
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// TestDefaultStorageDirSystemd: under systemd the state directory is the
// default, so that the shipped unit's service (its own user, HOME in the
// state directory) and root's commands use the same storage; another
// program's state directory gets a certkeeper directory inside it.
func TestDefaultStorageDirSystemd(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("systemd's directories are unix paths")
	}
	for env, want := range map[string]string{
		"/var/lib/certkeeper":            "/var/lib/certkeeper",
		"/var/lib/certkeeper:/var/lib/x": "/var/lib/certkeeper",
		"/var/lib/myapp":                 filepath.Join("/var/lib/myapp", "certkeeper"),
		"relative/certkeeper":            "", // not systemd's: ignored
	} {
		t.Setenv("STATE_DIRECTORY", env)
		got := certkeeper.DefaultStorageDir()
		if want == "" {
			t.Setenv("STATE_DIRECTORY", "")
			want = certkeeper.DefaultStorageDir()
		}
		if got != filepath.FromSlash(want) {
			t.Errorf("STATE_DIRECTORY=%s: DefaultStorageDir() = %s, want %s", env, got, want)
		}
	}
}
