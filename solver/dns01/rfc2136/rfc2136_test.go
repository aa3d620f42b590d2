package rfc2136

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/testsvc"
	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

const secret = "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IHNlY3I="

func TestParseKey(t *testing.T) {
	for _, tt := range []struct {
		in            string
		name, alg     string
		wantErrSubstr string
	}{
		{in: "certkeeper:hmac-sha256:" + secret, name: "certkeeper", alg: "hmac-sha256"},
		{in: "hmac-sha512:certkeeper.:" + secret, name: "certkeeper.", alg: "hmac-sha512"},
		{in: "certkeeper:hmac-md5:" + secret, wantErrSubstr: "hmac-sha256 or hmac-sha512"},
		{in: "certkeeper:hmac-sha256:not base64!", wantErrSubstr: "not standard base64"},
		{in: "certkeeper", wantErrSubstr: "NAME:ALGORITHM:SECRET"},
	} {
		var p Provider
		err := p.ParseKey(tt.in)
		if tt.wantErrSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr) {
				t.Errorf("ParseKey(%q) = %v, want an error with %q", tt.in, err, tt.wantErrSubstr)
			}
			if _, sec, _ := strings.Cut(tt.in[strings.IndexByte(tt.in, ':')+1:], ":"); err != nil && sec != "" && strings.Contains(err.Error(), sec) {
				t.Errorf("ParseKey(%q) error repeats the secret: %v", tt.in, err)
			}
			continue
		}
		if err != nil || p.KeyName != tt.name || p.Algorithm != tt.alg || p.Secret != secret {
			t.Errorf("ParseKey(%q) = %+v, %v", tt.in, p, err)
		}
	}
}

// TestSecretNeverLogged: String and LogValue leave the secret out.
func TestSecretNeverLogged(t *testing.T) {
	p := &Provider{Server: "127.0.0.1:53", KeyName: "k", Secret: secret}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", slog.Any("provider", p))
	for _, s := range []string{buf.String(), p.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("secret in %q", s)
		}
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Errorf("log = %q, want REDACTED", buf.String())
	}
}

// TestNamedBothAlgorithms adds and deletes a TXT value on a real named
// with an hmac-sha256 and an hmac-sha512 key; deleting one never set
// (on a name with other values, and on one with none) is no error.
func TestNamedBothAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{HMACSHA256, HMACSHA512} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			n := testsvc.Named(t, testsvc.NamedOptions{Algorithm: alg})
			p := &Provider{Server: n.Addr(), KeyName: n.KeyName(), Algorithm: alg, Secret: n.Secret()}
			long := strings.Repeat("v", 300) // more than one 255-byte string
			recs := []libdns.Record{libdns.TXT{Name: "_x", TTL: time.Minute, Text: "one"}, libdns.TXT{Name: "_x", TTL: time.Minute, Text: long}}
			if _, err := p.AppendRecords(t.Context(), "a.test.", recs); err != nil {
				t.Fatalf("AppendRecords: %v", err)
			}
			if got := txtAt(t, n.Addr(), "_x.a.test."); len(got) != 2 || !slices.Contains(got, long) {
				t.Errorf("after AppendRecords: %d values (long one there: %t), want 2", len(got), slices.Contains(got, long))
			}
			if _, err := p.DeleteRecords(t.Context(), "a.test.", recs[:1]); err != nil {
				t.Fatalf("DeleteRecords: %v", err)
			}
			if got := txtAt(t, n.Addr(), "_x.a.test."); len(got) != 1 || got[0] != long {
				t.Errorf("after deleting one value: %d values, want only the other", len(got))
			}
			if n.Updates() != 3 {
				t.Errorf("named applied %d updates, want 3", n.Updates())
			}
			// A value never set, as the dns-01 solver's cleanup after a
			// failed present may delete, is no error and changes nothing.
			never := []libdns.Record{libdns.TXT{Name: "_x", TTL: time.Minute, Text: "never set"}, libdns.TXT{Name: "_y", TTL: time.Minute, Text: "never set"}}
			if _, err := p.DeleteRecords(t.Context(), "a.test.", never); err != nil {
				t.Errorf("DeleteRecords of values never set: %v", err)
			}
			if got := txtAt(t, n.Addr(), "_x.a.test."); len(got) != 1 || got[0] != long {
				t.Errorf("after deleting a value never set: %d values, want the one there", len(got))
			}
		})
	}
}

// TestKeepsTTL: a value added to an RRset already there (an operator's
// TXT record, TTL 7200) takes that RRset's TTL, as DNS gives every RR of a
// set one TTL: the server would otherwise set the whole RRset to the
// added RR's TTL (60), and it would stay so after the value's removal.
// Against BIND and Knot; a new RRset gets the record's TTL.
func TestKeepsTTL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (addr, key, secret string)
	}{
		{"named", func(t *testing.T) (string, string, string) {
			n := testsvc.Named(t, testsvc.NamedOptions{})
			return n.Addr(), n.KeyName(), n.Secret()
		}},
		{"knot", func(t *testing.T) (string, string, string) {
			k := testsvc.Knot(t, testsvc.KnotOptions{})
			return k.Addr(), k.KeyName(), k.Secret()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, key, sec := tc.start(t)
			p := &Provider{Server: addr, KeyName: key, Secret: sec}
			txt := func(v string, ttl time.Duration) []libdns.Record {
				return []libdns.Record{libdns.TXT{Name: "_acme-challenge", TTL: ttl, Text: v}}
			}
			if _, err := p.AppendRecords(t.Context(), "a.test.", txt("operator", 2*time.Hour)); err != nil {
				t.Fatalf("AppendRecords(operator): %v", err)
			}
			if got := ttlAt(t, addr, "_acme-challenge.a.test."); !slices.Equal(got, []uint32{7200}) {
				t.Fatalf("a new RRset: TTLs %v, want [7200] (the record's)", got)
			}
			if _, err := p.AppendRecords(t.Context(), "a.test.", txt("challenge", time.Minute)); err != nil {
				t.Fatalf("AppendRecords(challenge): %v", err)
			}
			if got := ttlAt(t, addr, "_acme-challenge.a.test."); !slices.Equal(got, []uint32{7200, 7200}) {
				t.Errorf("after adding the challenge value: TTLs %v, want [7200 7200]", got)
			}
			if _, err := p.DeleteRecords(t.Context(), "a.test.", txt("challenge", time.Minute)); err != nil {
				t.Fatalf("DeleteRecords(challenge): %v", err)
			}
			if got := ttlAt(t, addr, "_acme-challenge.a.test."); !slices.Equal(got, []uint32{7200}) {
				t.Errorf("after removing the challenge value: TTLs %v, want [7200]", got)
			}
		})
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

func txtAt(t *testing.T, server, name string) []string {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	resp, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, server)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rr := range resp.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

// TestNamedKeyErrors: a real named refusing an update tells a wrong key
// name (BADKEY) from a wrong secret (BADSIG), and a server that is not
// there is ErrUnreachable, naming Provider.Server (trial 19).
func TestNamedKeyErrors(t *testing.T) {
	t.Parallel()
	n := testsvc.Named(t, testsvc.NamedOptions{})
	closed := closedAddr(t)
	for _, tc := range []struct {
		name string
		p    Provider
		want []string
	}{
		{"wrong-name", Provider{Server: n.Addr(), KeyName: "wrongname", Secret: n.Secret()}, []string{"BADKEY", "KeyName", "may the key update this zone"}},
		{"wrong-secret", Provider{Server: n.Addr(), KeyName: n.KeyName(), Secret: secret}, []string{"BADSIG", "wrong secret"}},
		{"unreachable", Provider{Server: closed, KeyName: n.KeyName(), Secret: n.Secret()}, []string{"connection refused", "Provider.Server"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.AppendRecords(t.Context(), "a.test.", []libdns.Record{libdns.TXT{Name: "_x", TTL: time.Minute, Text: "v"}})
			if err == nil {
				t.Fatal("AppendRecords succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if got := errors.Is(err, ErrUnreachable); got != (tc.name == "unreachable") {
				t.Errorf("errors.Is(%v, ErrUnreachable) = %t", err, got)
			}
			if got := errors.Is(err, ErrBadKey); got != (tc.name == "wrong-name") {
				t.Errorf("errors.Is(%v, ErrBadKey) = %t", err, got)
			}
			t.Logf("%v", err)
		})
	}
	if n.Updates() != 0 {
		t.Errorf("named applied %d updates, want 0", n.Updates())
	}
}

// TestNamedCheckAccess: CheckAccess, against a real named, passes with the
// key that may update the zone and changes nothing (no update applied, the
// serial as it was), and fails as an update would with a wrong secret, a
// zone the server does not hold, or no server.
func TestNamedCheckAccess(t *testing.T) {
	t.Parallel()
	n := testsvc.Named(t, testsvc.NamedOptions{})
	closed := closedAddr(t)
	serial := func() uint32 { return testsvc.SOASerial(t, n.Addr(), "a.test.") }
	before := serial()
	good := &Provider{Server: n.Addr(), KeyName: n.KeyName(), Secret: n.Secret()}
	if err := good.CheckAccess(t.Context(), "a.test.", "_acme-challenge.x.a.test."); err != nil {
		t.Fatalf("CheckAccess with the zone's key: %v", err)
	}
	if after := serial(); after != before || n.DigTXT(t, "_acme-challenge.x.a.test") != "" {
		t.Errorf("CheckAccess changed the zone: serial %d → %d", before, after)
	}
	for _, tc := range []struct {
		name, zone string
		p          Provider
		want       string
	}{
		{"wrong-secret", "a.test.", Provider{Server: n.Addr(), KeyName: n.KeyName(), Secret: secret}, "BADSIG"},
		{"other-zone", "other.test.", *good, "NOTAUTH"},
		{"unreachable", "a.test.", Provider{Server: closed, KeyName: n.KeyName(), Secret: n.Secret()}, "connection refused"},
	} {
		err := tc.p.CheckAccess(t.Context(), tc.zone, "_acme-challenge.x."+tc.zone)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckAccess = %v, want an error saying %s", tc.name, err, tc.want)
		}
		// The server's answer is unsigned because it lacks the zone: the
		// key is fine, and miekg/dns's "bad authentication" misled a trial.
		if tc.name == "other-zone" && err != nil && strings.Contains(err.Error(), "bad authentication") {
			t.Errorf("%s: CheckAccess = %v, which blames the key", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

// TestNamedCheckAccessPerName: with the least-privilege update-policy that
// grants the key one name's TXT records (a trial's BIND, as
// certbot-dns-rfc2136's docs advise), CheckAccess passes for that record
// and fails for another name with REFUSED and what to check, and
// changes nothing either way.
func TestNamedCheckAccessPerName(t *testing.T) {
	t.Parallel()
	n := testsvc.Named(t, testsvc.NamedOptions{Records: []string{"_acme-challenge.only.a.test"}})
	before := testsvc.SOASerial(t, n.Addr(), "a.test.")
	p := &Provider{Server: n.Addr(), KeyName: n.KeyName(), Secret: n.Secret()}
	if err := p.CheckAccess(t.Context(), "a.test.", "_acme-challenge.only.a.test."); err != nil {
		t.Fatalf("CheckAccess of the granted record: %v", err)
	}
	err := p.CheckAccess(t.Context(), "a.test.", "_acme-challenge.other.a.test.")
	if err == nil || !strings.Contains(err.Error(), "REFUSED") || !strings.Contains(err.Error(), "update-policy") {
		t.Errorf("CheckAccess of a record the policy does not grant = %v, want REFUSED naming update-policy", err)
	}
	if after := testsvc.SOASerial(t, n.Addr(), "a.test."); after != before {
		t.Errorf("CheckAccess changed the zone: serial %d → %d", before, after)
	}
	// The granted record can really be set: the check said what the update finds.
	if _, err := p.AppendRecords(t.Context(), "a.test.", []libdns.Record{libdns.TXT{Name: "_acme-challenge.only", TTL: time.Minute, Text: "v"}}); err != nil {
		t.Fatalf("AppendRecords of the granted record: %v", err)
	}
	t.Logf("refused: %v", err)
}

// TestKnotCheckAccess: Knot, too, accepts the update that changes nothing
// from the zone's key, leaves the serial as it was, and refuses a wrong
// secret.
func TestKnotCheckAccess(t *testing.T) {
	t.Parallel()
	k := testsvc.Knot(t, testsvc.KnotOptions{})
	before := testsvc.SOASerial(t, k.Addr(), "a.test.")
	good := &Provider{Server: k.Addr(), KeyName: k.KeyName(), Secret: k.Secret()}
	if err := good.CheckAccess(t.Context(), "a.test.", "_acme-challenge.x.a.test."); err != nil {
		t.Fatalf("CheckAccess with the zone's key: %v", err)
	}
	if after := testsvc.SOASerial(t, k.Addr(), "a.test."); after != before {
		t.Errorf("CheckAccess changed the zone's serial: %d → %d", before, after)
	}
	bad := &Provider{Server: k.Addr(), KeyName: k.KeyName(), Secret: secret}
	if err := bad.CheckAccess(t.Context(), "a.test.", "_acme-challenge.x.a.test."); err == nil || !strings.Contains(err.Error(), "BADSIG") {
		t.Errorf("CheckAccess with a wrong secret = %v, want BADSIG", err)
	}
}

// TestKnotKeyRefusedForZone: Knot answers BADKEY (NOTAUTH), not REFUSED,
// to an update signed with a key it knows when its ACL does not let that
// key update the zone (a user trial); the error says the key may be
// refused for this zone, and how Knot and BIND grant it, besides asking
// about the key's name and algorithm.
func TestKnotKeyRefusedForZone(t *testing.T) {
	t.Parallel()
	k := testsvc.Knot(t, testsvc.KnotOptions{Zones: []string{"a.test", "b.test"}, Locked: []string{"b.test"}})
	p := &Provider{Server: k.Addr(), KeyName: k.KeyName(), Secret: k.Secret()}
	recs := []libdns.Record{libdns.TXT{Name: "_x", TTL: time.Minute, Text: "v"}}
	if _, err := p.AppendRecords(t.Context(), "a.test.", recs); err != nil {
		t.Fatalf("AppendRecords in the zone the key may update: %v", err)
	}
	_, err := p.AppendRecords(t.Context(), "b.test.", recs)
	if !errors.Is(err, ErrBadKey) {
		t.Fatalf("AppendRecords in the zone the ACL does not open to the key = %v, want ErrBadKey", err)
	}
	for _, want := range []string{"BADKEY", "refuses that key for this zone", "may the key update this zone",
		"acl with action: update", "update-policy or allow-update", "KeyName and Algorithm"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Logf("%v", err)
}

// closedAddr is a loopback TCP address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
