package powerdns

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// TestRRsetMerge: against a real pdns_server, two values appended at once
// on one name (a wildcard and its apex) are both served; deleting one
// keeps the other; deleting the last removes the RRset; deleting it again
// is no error.
func TestRRsetMerge(t *testing.T) {
	t.Parallel()
	srv := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	p := &Provider{APIURL: srv.APIURL() + "/api/v1", APIKey: srv.APIKey()}
	rec := func(v string) []libdns.Record {
		return []libdns.Record{libdns.TXT{Name: "_acme-challenge", TTL: time.Minute, Text: v}}
	}
	var wg sync.WaitGroup
	for _, v := range []string{"one", `two "quoted"`} {
		wg.Go(func() {
			if _, err := p.AppendRecords(t.Context(), "a.test.", rec(v)); err != nil {
				t.Errorf("AppendRecords(%q): %v", v, err)
			}
		})
	}
	wg.Wait()
	dig := func() string { return srv.DigTXT(t, "_acme-challenge.a.test") }
	if got := dig(); !strings.Contains(got, `"one"`) || !strings.Contains(got, `"two \"quoted\""`) {
		t.Fatalf("after two appends, dig = %q, want both values", got)
	}
	if _, err := p.DeleteRecords(t.Context(), "a.test", rec("one")); err != nil {
		t.Fatal(err)
	}
	if got := dig(); got != `"two \"quoted\""` {
		t.Errorf("after deleting one, dig = %q, want the other", got)
	}
	for range 2 {
		if _, err := p.DeleteRecords(t.Context(), "a.test.", rec(`two "quoted"`)); err != nil {
			t.Fatal(err)
		}
	}
	if got := dig(); got != "" {
		t.Errorf("after deleting both, dig = %q, want nothing", got)
	}
}

// TestRRsetKeepsTTL: against a real pdns_server, a challenge value added
// to an RRset an operator set (TTL 7200) leaves its TTL at 7200, as
// does its removal; the operator's value stays. A user trial saw the
// RRset rewritten with the challenge's TTL (60), for good.
func TestRRsetKeepsTTL(t *testing.T) {
	t.Parallel()
	srv := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	p := &Provider{APIURL: srv.APIURL(), APIKey: srv.APIKey()}
	txt := func(v string, ttl time.Duration) []libdns.Record {
		return []libdns.Record{libdns.TXT{Name: "_acme-challenge", TTL: ttl, Text: v}}
	}
	if _, err := p.AppendRecords(t.Context(), "a.test.", txt("operator", 2*time.Hour)); err != nil {
		t.Fatalf("AppendRecords(operator): %v", err)
	}
	if got := ttlAt(t, srv.Addr(), "_acme-challenge.a.test."); len(got) != 1 || got[0] != 7200 {
		t.Fatalf("a new RRset: TTLs %v, want [7200] (the record's)", got)
	}
	if _, err := p.AppendRecords(t.Context(), "a.test.", txt("challenge", time.Minute)); err != nil {
		t.Fatalf("AppendRecords(challenge): %v", err)
	}
	if got := ttlAt(t, srv.Addr(), "_acme-challenge.a.test."); len(got) != 2 || got[0] != 7200 || got[1] != 7200 {
		t.Errorf("after adding the challenge value: TTLs %v, want [7200 7200]", got)
	}
	if _, err := p.DeleteRecords(t.Context(), "a.test.", txt("challenge", time.Minute)); err != nil {
		t.Fatalf("DeleteRecords(challenge): %v", err)
	}
	if got := ttlAt(t, srv.Addr(), "_acme-challenge.a.test."); len(got) != 1 || got[0] != 7200 {
		t.Errorf("after removing the challenge value: TTLs %v, want [7200]", got)
	}
	if got := srv.DigTXT(t, "_acme-challenge.a.test"); got != `"operator"` {
		t.Errorf("after removing the challenge value: dig = %q, want the operator's value", got)
	}
}

// ttlAt returns the TTL of each TXT record of name that server answers.
func ttlAt(t *testing.T, server, name string) []uint32 {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, server)
	if err != nil {
		t.Fatalf("TXT %s at %s: %v", name, server, err)
	}
	var out []uint32
	for _, rr := range resp.Answer {
		if _, ok := rr.(*dns.TXT); ok {
			out = append(out, rr.Header().Ttl)
		}
	}
	return out
}

// TestAPIKeyNeverShown: a wrong key fails naming the API and the status,
// and neither the wrong nor the right key appears in the error, String or
// the log.
func TestAPIKeyNeverShown(t *testing.T) {
	t.Parallel()
	srv := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	wrong := "wrong-" + srv.APIKey()
	p := &Provider{APIURL: srv.APIURL(), APIKey: wrong}
	_, err := p.AppendRecords(t.Context(), "a.test.", []libdns.Record{libdns.TXT{Name: "x", Text: "v"}})
	if err == nil {
		t.Fatal("AppendRecords with a wrong key succeeded")
	}
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("provider", "p", p)
	for what, s := range map[string]string{"error": err.Error(), "String": p.String(), "log": log.String()} {
		if strings.Contains(s, srv.APIKey()) {
			t.Errorf("%s %q contains the API key", what, s)
		}
	}
	if !strings.Contains(err.Error(), srv.APIURL()) || !strings.Contains(err.Error(), "401") {
		t.Errorf("error %q does not name the API and the 401", err)
	}
	t.Logf("wrong API key: %v", err)
}

// TestQuoteTXT: values round-trip through PowerDNS's TXT content syntax.
func TestQuoteTXT(t *testing.T) {
	for _, v := range []string{"", "abc", `a"b\c`, "é\x01", strings.Repeat("x", 300)} {
		if got := unquoteTXT(quoteTXT(v)); got != v {
			t.Errorf("unquoteTXT(quoteTXT(%q)) = %q", v, got)
		}
	}
}

// TestNotFound: a 404 from a wrong API URL path (trial 19 gave
// http://HOST:PORT/api) says what APIURL should look like; a 404 from the
// API itself (a zone it does not have) asks about the zone.
func TestNotFound(t *testing.T) {
	t.Parallel()
	srv := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	add := func(p *Provider, zone string) error {
		_, err := p.AppendRecords(t.Context(), zone, []libdns.Record{libdns.TXT{Name: "x", Text: "v"}})
		return err
	}
	err := add(&Provider{APIURL: srv.APIURL() + "/api", APIKey: srv.APIKey()}, "a.test.")
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "is APIURL the API's base URL, e.g. http://127.0.0.1:8081") ||
		!strings.Contains(err.Error(), "/api/v1/servers/localhost/zones/ZONE") {
		t.Errorf("wrong URL path: err = %v, want a 404 saying what APIURL should be", err)
	}
	if !errors.Is(err, ErrNoAPIServer) {
		t.Errorf("wrong URL path: err = %v, want ErrNoAPIServer", err)
	}
	t.Logf("wrong URL path: %v", err)
	err = add(&Provider{APIURL: srv.APIURL(), APIKey: srv.APIKey()}, "nowhere.test.")
	if err == nil || !strings.Contains(err.Error(), "is the zone on this server") || strings.Contains(err.Error(), "base URL") || errors.Is(err, ErrNoAPIServer) {
		t.Errorf("unknown zone: err = %v, want one asking about the zone", err)
	}
	t.Logf("unknown zone: %v", err)
}

// TestNoHTTPAnswer: an APIURL where no HTTP server answers (the DNS port,
// a mistake the trial made) says what APIURL must be,
// not a bare EOF.
func TestNoHTTPAnswer(t *testing.T) {
	t.Parallel()
	srv := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	for _, url := range []string{"http://" + srv.Addr()} {
		p := &Provider{APIURL: url, APIKey: srv.APIKey()}
		err := p.CheckAccess(t.Context(), "a.test.", "")
		if err == nil || !strings.Contains(err.Error(), "no HTTP answer (is APIURL the API's base URL: webserver-address and webserver-port in pdns.conf") ||
			!errors.Is(err, ErrUnreachable) {
			t.Errorf("CheckAccess at %s = %v, want ErrUnreachable saying what APIURL must be", url, err)
		}
		t.Logf("%s: %v", url, err)
	}
}

// TestCheckAccess: CheckAccess passes with the API key for a zone the
// server has, and fails as a change would with a wrong key or zone.
func TestCheckAccess(t *testing.T) {
	t.Parallel()
	srv := testsvc.PowerDNS(t, testsvc.PowerDNSOptions{})
	good := &Provider{APIURL: srv.APIURL(), APIKey: srv.APIKey()}
	if err := good.CheckAccess(t.Context(), "a.test.", ""); err != nil {
		t.Fatalf("CheckAccess: %v", err)
	}
	bad := &Provider{APIURL: srv.APIURL(), APIKey: "wrong-" + srv.APIKey()}
	if err := bad.CheckAccess(t.Context(), "a.test.", ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("CheckAccess with a wrong key = %v, want the 401", err)
	}
	if err := good.CheckAccess(t.Context(), "nowhere.test.", ""); err == nil || !strings.Contains(err.Error(), "is the zone on this server") {
		t.Errorf("CheckAccess of a zone the server lacks = %v, want it to ask about the zone", err)
	}
}
