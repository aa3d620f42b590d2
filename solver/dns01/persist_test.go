package dns01_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/libdns/libdns"
	"github.com/mholt/acmez/v3/acme"
)

// TestPersistRecordValue pins the draft-00 syntax Pebble v2.10 parses.
func TestPersistRecordValue(t *testing.T) {
	until := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		rec  dns01.PersistRecord
		want string
	}{
		{"plain", dns01.PersistRecord{Name: "a.test", Issuer: "letsencrypt.org", Account: "https://ca.example/acct/1"},
			"letsencrypt.org; accounturi=https://ca.example/acct/1"},
		{"wildcard until", dns01.PersistRecord{Name: "a.test", Issuer: "letsencrypt.org", Account: "https://ca.example/acct/1", Wildcard: true, Until: until},
			"letsencrypt.org; accounturi=https://ca.example/acct/1; policy=wildcard; persistUntil=4102444800"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.rec.Value()
			if err != nil || got != tt.want {
				t.Errorf("Value() = %q, %v; want %q", got, err, tt.want)
			}
			if fq := tt.rec.FQDN(); fq != "_validation-persist.a.test" {
				t.Errorf("FQDN() = %q", fq)
			}
		})
	}
	if _, err := (dns01.PersistRecord{Format: "draft-99"}).Value(); err == nil {
		t.Error("an unknown format gave a value")
	}
}

// TestPersistNoUpdates: after one dns-persist-01 record is set, three
// issuances for its name (one with a wildcard) succeed while BIND
// receives no update, although a dns-01 solver is there as a fallback.
func TestPersistNoUpdates(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	persist := &dns01.Persist{Resolver: e.resolver(), Provider: e.provider()}
	iss := e.issuer(t, map[string]solver.Solver{
		acmeca.DNSPersist01: persist,
		acmeca.DNS01:        e.solver(e.provider()),
	})
	ctx := t.Context()
	acct, err := iss.Account(ctx)
	if err != nil {
		t.Fatal(err)
	}
	idns, err := iss.IssuerDomainNames(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec := dns01.PersistRecord{Name: "a.test", Issuer: idns[0], Account: acct.Location, Wildcard: true, Until: time.Now().Add(time.Hour)}
	if err := persist.Set(ctx, rec); err != nil {
		t.Fatalf("Set: %v", err)
	}
	want, _ := rec.Value()
	if got := e.srv.DigTXT(t, "_validation-persist.a.test"); got != `"`+want+`"` {
		t.Errorf("dig TXT _validation-persist.a.test = %s, want %q", got, want)
	}
	before, orders := e.srv.Updates(), e.ca.Orders()
	for i, names := range [][]string{{"a.test"}, {"*.a.test", "a.test"}, {"a.test"}} {
		start := time.Now()
		cert, err := issue(ctx, t, iss, names...)
		if err != nil {
			t.Fatalf("issuance %d (%s): %v", i+1, strings.Join(names, ", "), err)
		}
		t.Logf("issuance %d (%s) via dns-persist-01 in %s", i+1, strings.Join(names, ", "), time.Since(start).Round(time.Millisecond))
		e.verify(t, cert, "a.test")
	}
	if n := e.srv.Updates() - before; n != 0 {
		t.Errorf("named applied %d updates during 3 issuances, want 0", n)
	}
	if n := e.ca.Orders() - orders; n != 3 {
		t.Errorf("Pebble saw %d orders, want 3", n)
	}
}

// TestPersistAbsentFallsBack: without the record, dns-persist-01 is not
// chosen and dns-01 answers.
func TestPersistAbsentFallsBack(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	iss := e.issuer(t, map[string]solver.Solver{
		acmeca.DNSPersist01: &dns01.Persist{Resolver: e.resolver()},
		acmeca.DNS01:        e.solver(e.provider()),
	})
	if _, err := issue(t.Context(), t, iss, "a.test"); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if n := e.srv.Updates(); n != 2 {
		t.Errorf("named applied %d updates, want 2 (dns-01 set and removed its record)", n)
	}
}

// TestPersistErrors: when dns-persist-01 is the only challenge set up
// and its record cannot be used, the error names the record looked up,
// what is there and what to do (trial 19): a record for another
// account names both accounts, one without policy=wildcard says so for
// a wildcard, and no record says there is no value.
func TestPersistErrors(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test", "b.test", "c.test")
	persist, iss, acct, idns := persistIssuer(t, e)
	ctx := t.Context()
	other := "https://ca.invalid/my-account/other"
	for _, rec := range []dns01.PersistRecord{
		{Name: "a.test", Issuer: idns[0], Account: other},
		{Name: "b.test", Issuer: idns[0], Account: acct.Location},
	} {
		if err := persist.Set(ctx, rec); err != nil {
			t.Fatalf("Set: %v", err)
		}
	}
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{[]string{"a.test"}, []string{"_validation-persist.a.test", "1 TXT value", other, acct.Location}},
		{[]string{"*.b.test"}, []string{"_validation-persist.b.test", "lacks policy=wildcard"}},
		{[]string{"c.test"}, []string{"_validation-persist.c.test", "no TXT value"}},
	} {
		_, err := issue(ctx, t, iss, tc.names...)
		if err == nil {
			t.Errorf("Issue(%s) succeeded", tc.names[0])
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Issue(%s): error %q does not say %q", tc.names[0], err, w)
			}
		}
		for _, bad := range []string{", (", "ChallengeOrder"} {
			if strings.Contains(err.Error(), bad) {
				t.Errorf("Issue(%s): error %q says %q", tc.names[0], err, bad)
			}
		}
		if !errors.Is(err, acmeca.ErrNoChallenge) || !errors.Is(err, dns01.ErrNoPersistRecord) {
			t.Errorf("Issue(%s): error %v is not ErrNoChallenge and ErrNoPersistRecord", tc.names[0], err)
		}
		t.Logf("%s: %v", tc.names[0], err)
	}
}

// TestPersistPrefersWildcard: with two records for this CA and account
// on one name (trial 19 ran dns-persist-record twice: they add up), one
// with policy=wildcard, a wildcard order uses that one, whichever the
// nameserver lists first (before the fix, Find took the first listed: this
// test failed unless named listed the wildcard one first 8 times).
func TestPersistPrefersWildcard(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	persist, iss, acct, idns := persistIssuer(t, e)
	ctx := t.Context()
	// Set replaces this account's earlier values now: the second, narrower
	// value is added beside it through the provider, as a second run of an
	// older certkeeper (or a hand-made record) left it.
	if err := persist.Set(ctx, dns01.PersistRecord{Name: "a.test", Issuer: idns[0], Account: acct.Location, Wildcard: true}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	narrow, err := dns01.PersistRecord{Name: "a.test", Issuer: idns[0], Account: acct.Location}.Value()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.provider().AppendRecords(ctx, "a.test.", []libdns.Record{libdns.TXT{Name: "_validation-persist", TTL: time.Hour, Text: narrow}}); err != nil {
		t.Fatalf("adding the narrower value: %v", err)
	}
	for i := range 8 { // named may serve the values in any order
		rec, err := persist.Find(ctx, "a.test", idns, acct.Location)
		if err != nil || !rec.Wildcard {
			t.Fatalf("Find %d = %+v, %v; want the policy=wildcard record", i, rec, err)
		}
	}
	if _, err := issue(ctx, t, iss, "*.a.test"); err != nil {
		t.Errorf("Issue(*.a.test): %v", err)
	}
}

// TestPersistSetReplaces: setting a record again for the same CA and
// account (another policy) replaces the value served before, and leaves
// another account's value alone (trial 19: a second run added a second
// value, and the wider authorization stayed in force).
func TestPersistSetReplaces(t *testing.T) {
	t.Parallel()
	e := newDNSEnv(t, "a.test")
	persist := &dns01.Persist{Resolver: e.resolver(), Provider: e.provider()}
	ctx := t.Context()
	mine := dns01.PersistRecord{Name: "a.test", Issuer: "ca.test", Account: "https://ca.test/acct/1", Wildcard: true, Until: time.Now().Add(time.Hour)}
	other := dns01.PersistRecord{Name: "a.test", Issuer: "ca.test", Account: "https://ca.test/acct/2"}
	narrower := mine
	narrower.Wildcard, narrower.Until = false, time.Time{}
	for _, rec := range []dns01.PersistRecord{other, mine, narrower} {
		if err := persist.Set(ctx, rec); err != nil {
			t.Fatalf("Set(%+v): %v", rec, err)
		}
	}
	got := e.srv.DigTXT(t, "_validation-persist.a.test")
	for _, rec := range []dns01.PersistRecord{other, narrower} {
		if v, _ := rec.Value(); !strings.Contains(got, `"`+v+`"`) {
			t.Errorf("dig TXT _validation-persist.a.test = %s, lacks %q", got, v)
		}
	}
	if v, _ := mine.Value(); strings.Contains(got, `"`+v+`"`) {
		t.Errorf("dig TXT _validation-persist.a.test = %s, still holds the replaced %q", got, v)
	}
}

// persistIssuer returns a Persist solver on e, an issuer answering only
// dns-persist-01 with it, that issuer's account and the CA's issuer
// domain names.
func persistIssuer(t *testing.T, e *dnsEnv) (*dns01.Persist, *acmeca.Issuer, acme.Account, []string) {
	t.Helper()
	persist := &dns01.Persist{Resolver: e.resolver(), Provider: e.provider()}
	iss := e.issuer(t, map[string]solver.Solver{acmeca.DNSPersist01: persist})
	acct, err := iss.Account(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	idns, err := iss.IssuerDomainNames(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return persist, iss, acct, idns
}
