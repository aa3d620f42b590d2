package dns01_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/solver/dns01/rfc2136"
	"github.com/libdns/libdns"
)

// Any libdns provider module plugs in as the Provider: here a stand-in
// for one such as github.com/libdns/cloudflare, whose Provider value
// (&cloudflare.Provider{APIToken: "..."}) would take its place.
func Example_libdnsProvider() {
	var provider dns01.Provider = &myDNSHost{} // e.g. &cloudflare.Provider{APIToken: token}

	m := &certkeeper.Manager{
		Policy:    policy.Allowlist("a.example", "*.a.example"),
		Wildcards: []string{"*.a.example"}, // one certificate for every subdomain
		Issuers: []issuer.Issuer{&acmeca.Issuer{
			Email: "ops@a.example",
			Solvers: map[string]solver.Solver{
				acmeca.DNS01:        &dns01.Solver{Provider: provider},
				acmeca.DNSPersist01: &dns01.Persist{}, // used where a _validation-persist record is in place
			},
		}},
	}
	_ = m.TLSConfig() // serve with it: tls.Listen("tcp", ":443", m.TLSConfig())
}

// BIND, Knot or PowerDNS through RFC 2136 dynamic updates with a TSIG key.
func ExampleSolver_rfc2136() {
	p := &rfc2136.Provider{Server: "ns1.a.example:53"}
	if err := p.ParseKey("certkeeper:hmac-sha256:c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IHNlY3I="); err != nil {
		fmt.Println(err)
		return
	}
	s := &dns01.Solver{Provider: p}
	iss := &acmeca.Issuer{Solvers: map[string]solver.Solver{acmeca.DNS01: s}}
	_ = iss
	fmt.Println(p)
	// Output: rfc2136 server ns1.a.example:53 key certkeeper. (hmac-sha256)
}

// myDNSHost stands for a libdns provider module: it keeps records in
// memory.
type myDNSHost struct {
	mu      sync.Mutex
	records map[string][]libdns.Record
}

func (h *myDNSHost) AppendRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.records == nil {
		h.records = map[string][]libdns.Record{}
	}
	h.records[zone] = append(h.records[zone], recs...)
	return recs, nil
}

func (h *myDNSHost) DeleteRecords(_ context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var kept []libdns.Record
	for _, r := range h.records[zone] {
		drop := false
		for _, d := range recs {
			if r.RR() == d.RR() {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, r)
		}
	}
	h.records[zone] = kept
	return recs, nil
}
