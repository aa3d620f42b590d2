// Package rfc2136 is a DNS provider that changes records with dynamic
// updates (RFC 2136) signed with a TSIG key (RFC 8945), for any server
// that accepts them: BIND, Knot, PowerDNS, Windows DNS with TSIG.
//
// It implements the libdns RecordAppender and RecordDeleter contract, so
// it plugs into dns01.Solver like any libdns provider. It never logs the
// key's secret, and Provider's String and LogValue leave it out.
package rfc2136

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// Supported TSIG algorithms, as BIND and nsupdate name them.
const (
	HMACSHA256 = "hmac-sha256"
	HMACSHA512 = "hmac-sha512"
)

// Provider sends dynamic updates to one server. Server, KeyName,
// Algorithm and Secret are required; it is safe for concurrent use.
type Provider struct {
	// Server is the primary server's host:port (port 53 if omitted).
	Server string
	// KeyName is the TSIG key's name, e.g. "certkeeper." (a trailing dot
	// is added if missing).
	KeyName string
	// Algorithm is hmac-sha256 or hmac-sha512. Empty means hmac-sha256.
	Algorithm string
	// Secret is the key in standard base64, as in named.conf.
	Secret string
	// Timeout bounds one update, and the queries for the TTLs of the
	// RRsets an update adds to. Zero means 10 s.
	Timeout time.Duration
}

// ParseKey parses a key given as NAME:ALG:SECRET (or ALG:NAME:SECRET, as
// nsupdate -y takes it) into p's KeyName, Algorithm and Secret.
func (p *Provider) ParseKey(s string) error {
	parts := strings.SplitN(strings.TrimSpace(s), ":", 3)
	if len(parts) != 3 {
		return errors.New("TSIG key: want NAME:ALGORITHM:SECRET (e.g. certkeeper:hmac-sha256:BASE64)")
	}
	name, alg := parts[0], parts[1]
	if isAlgorithm(name) && !isAlgorithm(alg) {
		name, alg = alg, name
	}
	if !isAlgorithm(alg) {
		return fmt.Errorf("TSIG key %s: algorithm %q: use hmac-sha256 or hmac-sha512", name, alg)
	}
	if _, err := base64.StdEncoding.DecodeString(parts[2]); err != nil {
		return fmt.Errorf("TSIG key %s: the secret is not standard base64", name)
	}
	p.KeyName, p.Algorithm, p.Secret = name, strings.ToLower(alg), parts[2]
	return nil
}

func isAlgorithm(s string) bool {
	s = strings.ToLower(strings.TrimSuffix(s, "."))
	return s == HMACSHA256 || s == HMACSHA512
}

// String describes the provider without its secret.
func (p *Provider) String() string {
	return fmt.Sprintf("rfc2136 server %s key %s (%s)", p.server(), p.keyName(), p.algorithm())
}

// LogValue keeps the secret out of logs.
func (p *Provider) LogValue() slog.Value {
	return slog.GroupValue(slog.String("server", p.server()), slog.String("key", p.keyName()),
		slog.String("algorithm", p.algorithm()), slog.String("secret", "REDACTED"))
}

func (p *Provider) server() string {
	if _, _, err := net.SplitHostPort(p.Server); err != nil {
		return net.JoinHostPort(p.Server, "53")
	}
	return p.Server
}

func (p *Provider) keyName() string { return dns.Fqdn(strings.ToLower(p.KeyName)) }

func (p *Provider) algorithm() string {
	if p.Algorithm == "" {
		return HMACSHA256
	}
	return strings.ToLower(strings.TrimSuffix(p.Algorithm, "."))
}

// AppendRecords adds recs to zone in one update. A record added to an
// RRset already there gets that RRset's TTL (see keepTTLs).
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	rrs, err := toRRs(zone, recs)
	if err != nil {
		return nil, err
	}
	p.keepTTLs(ctx, rrs)
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.Insert(rrs)
	if err := p.send(ctx, zone, m); err != nil {
		return nil, err
	}
	return recs, nil
}

// DeleteRecords removes exactly recs (name, type and value) from zone in
// one update; a record that is not there is no error.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	rrs, err := toRRs(zone, recs)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.Remove(rrs)
	if err := p.send(ctx, zone, m); err != nil {
		return nil, err
	}
	return recs, nil
}

// keepTTLs gives each of rrs whose RRset the server already has that
// RRset's TTL, as the server answers a query for it. DNS gives every RR
// of a set one TTL (RFC 2181 §5.2), so BIND and Knot set the whole RRset
// to an added RR's TTL, and it stays so after that RR is removed: an
// operator's TXT record beside the challenge's would keep the
// challenge's short TTL for good. One query per RRset, unsigned; one
// that fails leaves the records' TTL, and the update says what is wrong.
func (p *Provider) keepTTLs(ctx context.Context, rrs []dns.RR) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout())
	defer cancel()
	type rrset struct {
		name  string
		rtype uint16
	}
	ttls := map[rrset]uint32{} // 0: no RRset there, or no answer
	for _, rr := range rrs {
		h := rr.Header()
		k := rrset{strings.ToLower(h.Name), h.Rrtype}
		ttl, asked := ttls[k]
		if !asked {
			ttl = p.rrsetTTL(ctx, h.Name, h.Rrtype)
			ttls[k] = ttl
		}
		if ttl > 0 {
			h.Ttl = ttl
		}
	}
}

// rrsetTTL returns the TTL of the RRset of name and type that the server
// answers, or 0 for none (or no answer).
func (p *Provider) rrsetTTL(ctx context.Context, name string, rtype uint16) uint32 {
	m := new(dns.Msg)
	m.SetQuestion(name, rtype)
	m.RecursionDesired = false
	c := &dns.Client{Net: "tcp", Timeout: p.timeout()}
	resp, _, err := c.ExchangeContext(ctx, m, p.server())
	if err != nil || resp.Rcode != dns.RcodeSuccess {
		return 0
	}
	for _, rr := range resp.Answer {
		if h := rr.Header(); h.Rrtype == rtype && strings.EqualFold(h.Name, name) {
			return h.Ttl
		}
	}
	return 0
}

func (p *Provider) timeout() time.Duration {
	if p.Timeout <= 0 {
		return 10 * time.Second
	}
	return p.Timeout
}

// CheckAccess implements dns01.AccessChecker: it sends the primary an
// update of zone that changes nothing, signed with the key: a
// prerequisite (the zone's SOA exists) and the removal of a TXT value of
// record that is not there (accessProbe). The server checks the key
// (BADKEY, BADSIG, BADTIME), that it is the zone's primary, and that the
// key may update record's TXT records (BIND's update-policy, which may
// grant a key only some names; Knot's ACL), as for the real update; the
// zone and its serial stay as they are.
func (p *Provider) CheckAccess(ctx context.Context, zone, record string) error {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.RRsetUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: dns.Fqdn(zone), Rrtype: dns.TypeSOA}}})
	if record != "" {
		m.Remove([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(record), Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: []string{accessProbe}}})
	}
	return p.send(ctx, zone, m)
}

// accessProbe is the TXT value CheckAccess removes: no dns-01 value (43
// characters of base64url) looks like it, so nothing real is removed.
const accessProbe = "certkeeper access check: no such value"

// send signs m and sends it over TCP (updates may exceed a datagram, and
// TCP fails fast on a closed port).
func (p *Provider) send(ctx context.Context, zone string, m *dns.Msg) error {
	if p.Server == "" || p.KeyName == "" || p.Secret == "" {
		return errors.New("rfc2136: Server, KeyName and Secret are required")
	}
	if !isAlgorithm(p.algorithm()) {
		return fmt.Errorf("rfc2136: TSIG algorithm %q: use hmac-sha256 or hmac-sha512", p.Algorithm)
	}
	timeout := p.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "tcp", Timeout: timeout, TsigSecret: map[string]string{p.keyName(): p.Secret}}
	m.SetTsig(p.keyName(), dns.Fqdn(p.algorithm()), 300, time.Now().Unix())
	resp, _, err := c.ExchangeContext(ctx, m, p.server())
	what := fmt.Sprintf("updating zone %s at %s with TSIG key %s", strings.TrimSuffix(zone, "."), p.server(), p.keyName())
	if err != nil {
		if errors.Is(err, dns.ErrSig) || errors.Is(err, dns.ErrAuth) {
			why := keyRejected(resp)
			if errors.Is(why, ErrNotAuthoritative) {
				// The answer is unsigned because the server does not hold
				// the zone; miekg/dns's "bad authentication" would send the
				// reader to a key that is fine (a trial).
				return fmt.Errorf("%s: %w", what, why)
			}
			return fmt.Errorf("%s: %w: %w", what, why, err)
		}
		var ne net.Error
		if errors.As(err, &ne) {
			return fmt.Errorf("%s: %w: %w: check the primary's address (Provider.Server)", what, ErrUnreachable, err)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		detail := dns.RcodeToString[resp.Rcode]
		t := resp.IsTsig()
		if t != nil && t.Error != 0 {
			detail += " (" + dns.RcodeToString[int(t.Error)] + ")"
		}
		hint := ""
		switch {
		case resp.Rcode == dns.RcodeNotAuth && t != nil && t.Error != 0:
			return fmt.Errorf("%s: %s: %w", what, detail, keyRejected(resp))
		case resp.Rcode == dns.RcodeNotAuth:
			hint = ": the server did not accept the key (wrong name, secret or algorithm?) or is not authoritative for the zone"
		case resp.Rcode == dns.RcodeRefused:
			hint = ": the server refused the update (may the key update this record? BIND: the zone's update-policy or allow-update)"
		}
		return fmt.Errorf("%s: %s%s", what, detail, hint)
	}
	return nil
}

// ErrUnreachable is wrapped by the error of an update that got no answer
// from the server (connection refused, timed out).
var ErrUnreachable = errors.New("the DNS server did not answer")

// ErrBadKey is wrapped by the error of an update the server refused with
// the TSIG error BADKEY: it knows no key of that name and algorithm
// (Provider.KeyName, Provider.Algorithm), or, as Knot answers, its ACL
// does not let that key update this zone.
var ErrBadKey = errors.New("the server knows no key of that name and algorithm, or refuses that key for this zone (BADKEY)")

// ErrNotAuthoritative is wrapped by the error of an update the server
// answered NOTAUTH without a TSIG error: it does not hold the zone, so
// Provider.Server is not the zone's primary.
var ErrNotAuthoritative = errors.New("the server is not authoritative for the zone (NOTAUTH)")

// keyRejected says why the server refused the key, from the TSIG error
// of its answer (RFC 8945 §5.2): the key's name or algorithm unknown
// there, or the key not allowed to update the zone (BADKEY, wrapping
// ErrBadKey), or its signature wrong (BADSIG: the secret), or the
// clocks apart (BADTIME).
func keyRejected(resp *dns.Msg) error {
	var tsigErr uint16
	if resp != nil {
		if t := resp.IsTsig(); t != nil {
			tsigErr = t.Error
		}
	}
	switch {
	case resp != nil && resp.Rcode == dns.RcodeNotAuth && tsigErr == 0:
		// NOTAUTH with no key error: the server does not hold the zone
		// (and does not sign what it does not serve).
		return fmt.Errorf("%w: is the zone on this primary (Provider.Server)?", ErrNotAuthoritative)
	}
	switch tsigErr {
	case dns.RcodeBadKey:
		// Knot answers BADKEY, not REFUSED, when its ACL denies a key it
		// knows the update of a zone.
		return fmt.Errorf("%w: are KeyName and Algorithm as in its configuration, and may the key update this zone "+
			"(Knot: an acl with action: update for the key on the zone; BIND: update-policy or allow-update)?", ErrBadKey)
	case dns.RcodeBadSig:
		return errors.New("the server did not accept the key's signature (BADSIG): wrong secret?")
	case dns.RcodeBadTime:
		return errors.New("the server's clock and this host's differ by more than the TSIG fudge (BADTIME): check both clocks")
	}
	return errors.New("the server did not accept the key (wrong name, secret or algorithm?)")
}

// toRRs turns libdns records into miekg/dns RRs for zone.
func toRRs(zone string, recs []libdns.Record) ([]dns.RR, error) {
	zone = dns.Fqdn(zone)
	var out []dns.RR
	for _, r := range recs {
		rr := r.RR()
		ttl := uint32(rr.TTL / time.Second)
		hdr := dns.RR_Header{Name: libdns.AbsoluteName(rr.Name, zone), Class: dns.ClassINET, Ttl: ttl}
		if rr.Type == "TXT" {
			hdr.Rrtype = dns.TypeTXT
			out = append(out, &dns.TXT{Hdr: hdr, Txt: splitTXT(rr.Data)})
			continue
		}
		parsed, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", hdr.Name, ttl, rr.Type, rr.Data))
		if err != nil {
			return nil, fmt.Errorf("record %s %s: %w", hdr.Name, rr.Type, err)
		}
		out = append(out, parsed)
	}
	return out, nil
}

// splitTXT splits a TXT value into the 255-byte strings the wire needs.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}
