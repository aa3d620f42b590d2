package certkeeper_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestOnDemandWildcard: with Wildcards set, handshakes for 20 different
// subdomains of a.test (at once, then the apex and more one by one) place
// exactly one order, for *.a.test + a.test, validated through dns-01 on
// a real named.
func TestOnDemandWildcard(t *testing.T) {
	t.Parallel()
	ca, dns := wildcardDNS(t)
	m := wildcardManager(ca, filestore.New(t.TempDir()), map[string]solver.Solver{acmeca.DNS01: dns})
	addr := serveOn(t, m)
	roots := ca.IssuingRootPool(t)

	start := time.Now()
	var wg sync.WaitGroup
	serials := make([]string, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Go(func() {
			leaf, err := handshakeAddr(addr, fmt.Sprintf("host%d.a.test", i), roots)
			errs[i] = err
			if err == nil {
				serials[i] = leaf.SerialNumber.String()
			}
		})
	}
	wg.Wait()
	t.Logf("20 concurrent first handshakes for subdomains took %s", time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("handshake for host%d.a.test: %v", i, err)
		}
		if serials[i] != serials[0] {
			t.Errorf("host%d.a.test got serial %s, host0 %s", i, serials[i], serials[0])
		}
	}
	for _, name := range []string{"a.test", "later.a.test", "another.a.test"} {
		leaf, err := handshakeAddr(addr, name, roots)
		if err != nil {
			t.Fatalf("handshake for %s: %v", name, err)
		}
		if leaf.SerialNumber.String() != serials[0] {
			t.Errorf("%s got serial %s, want the wildcard's %s", name, leaf.SerialNumber, serials[0])
		}
	}
	if n := ca.Orders(); n != 1 {
		t.Errorf("orders = %d, want exactly 1", n)
	}
	// Two labels down is not covered by *.a.test: it is not served from it.
	if leaf, err := handshakeAddr(addr, "deep.x.a.test", roots); err == nil && leaf.SerialNumber.String() == serials[0] {
		t.Error("deep.x.a.test was served the *.a.test certificate")
	}
}

// TestOnDemandWildcardFailing: a wildcard whose issuance fails (the DNS
// server refuses the TSIG key) is backed off as the wildcard: a handshake
// for another subdomain right after places no second order, and status
// has one failing entry, for *.a.test and a.test (trial 19: one order and
// one status row per subdomain asked for).
func TestOnDemandWildcardFailing(t *testing.T) {
	t.Parallel()
	ca, dns := wildcardDNS(t)
	dns.Provider.(*rfc2136.Provider).Secret = "d3JvbmcgZG9vciwgd3Jvbmcga2V5IGZvciB0aGlzIHpvbmUh" // not the server's
	st := filestore.New(t.TempDir())
	m := wildcardManager(ca, st, map[string]solver.Solver{acmeca.DNS01: dns})
	t.Cleanup(func() { m.Close() })
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "one.a.test"}); err == nil || errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Fatalf("first handshake: %v, want the DNS provider's failure", err)
	}
	orders := ca.Orders()
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "two.a.test"}); !errors.Is(err, certkeeper.ErrFailedRecently) {
		t.Errorf("another subdomain right after: %v, want ErrFailedRecently (the wildcard's backoff)", err)
	}
	if n := ca.Orders(); n != orders {
		t.Errorf("%d more orders for the failing wildcard, want none", n-orders)
	}
	certs, err := status.Read(t.Context(), st, time.Now())
	if err != nil || len(certs) != 1 || certs[0].Key != status.FailingKey("*.a.test", "") || len(certs[0].Names) != 2 {
		t.Errorf("status = %+v (%v), want one failing entry for *.a.test and a.test", certs, err)
	}
}

// TestWildcardApexByDNS: in a wildcard's order the apex is validated
// through dns-01 too, although tls-alpn-01 comes first in the default
// order and is set up: nothing answers it where the CA connects, and the
// order needs DNS alone (trial 19: the apex went to tls-alpn-01 and the
// wildcard failed with it).
func TestWildcardApexByDNS(t *testing.T) {
	t.Parallel()
	ca, dns := wildcardDNS(t)
	// Nothing serves tls-alpn-01 where the CA connects.
	m := wildcardManager(ca, filestore.New(t.TempDir()), map[string]solver.Solver{acmeca.TLSALPN01: &tlsalpn01.Solver{}, acmeca.DNS01: dns})
	t.Cleanup(func() { m.Close() })
	if _, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: "x.a.test"}); err != nil {
		t.Fatalf("wildcard with its apex: %v", err)
	}
}

// wildcardDNS starts named for zone a.test and Pebble resolving through
// it, and returns Pebble and a dns-01 solver that updates named.
func wildcardDNS(t *testing.T) (*testca.CA, *dns01.Solver) {
	t.Helper()
	named := testsvc.Named(t, testsvc.NamedOptions{Zones: []string{"a.test"}})
	ca := testca.Start(t, testca.Options{DNSServer: named.Addr()})
	_, port, _ := net.SplitHostPort(named.Addr())
	nsPort, _ := strconv.Atoi(port)
	return ca, &dns01.Solver{
		Provider: &rfc2136.Provider{Server: named.Addr(), KeyName: named.KeyName(), Algorithm: named.Algorithm(), Secret: named.Secret()},
		Resolver: dns01.Resolver{Servers: []string{named.Addr()}, AuthoritativePort: nsPort},
	}
}

// wildcardManager is a Manager serving *.a.test and a.test from one
// wildcard certificate of ca, ordered with solvers.
func wildcardManager(ca *testca.CA, st storage.Storage, solvers map[string]solver.Solver) *certkeeper.Manager {
	return &certkeeper.Manager{
		Policy:    policy.Allowlist("a.test", "*.a.test"),
		Storage:   st,
		Wildcards: []string{"*.a.test"},
		Issuers:   []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Solvers: solvers}},
	}
}
