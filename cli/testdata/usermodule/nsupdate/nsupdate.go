// Package nsupdate is a libdns provider written for certkeeper's test of
// building certkeeper with another provider: TXT records set and removed
// with RFC 2136 updates signed with TSIG, in as few lines as BIND takes.
// It stands for any libdns module a user builds in; certkeeper's own
// rfc2136 provider is the one to use.
package nsupdate

import (
	"context"
	"fmt"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// Provider sends updates to Server, signed with the TSIG key KeyName,
// KeyAlg (default hmac-sha256) and Secret (base64).
type Provider struct {
	Server  string `json:"server"`
	KeyName string `json:"key_name"`
	KeyAlg  string `json:"key_alg"`
	Secret  string `json:"secret"`
}

// AppendRecords adds recs to zone.
func (p *Provider) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, p.update(ctx, zone, recs, (*dns.Msg).Insert)
}

// DeleteRecords removes recs from zone.
func (p *Provider) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	return recs, p.update(ctx, zone, recs, (*dns.Msg).Remove)
}

func (p *Provider) update(ctx context.Context, zone string, recs []libdns.Record, op func(*dns.Msg, []dns.RR)) error {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	var rrs []dns.RR
	for _, r := range recs {
		rr := r.RR()
		if rr.Type != "TXT" {
			return fmt.Errorf("nsupdate: %s records are not supported, only TXT", rr.Type)
		}
		hdr := dns.RR_Header{Name: dns.Fqdn(libdns.AbsoluteName(rr.Name, zone)), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: uint32(rr.TTL / time.Second)}
		rrs = append(rrs, &dns.TXT{Hdr: hdr, Txt: []string{rr.Data}})
	}
	op(m, rrs)
	alg := dns.HmacSHA256
	if p.KeyAlg == "hmac-sha512" {
		alg = dns.HmacSHA512
	}
	key := dns.Fqdn(p.KeyName)
	m.SetTsig(key, alg, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{key: p.Secret}}
	in, _, err := c.ExchangeContext(ctx, m, p.Server)
	if err != nil {
		return fmt.Errorf("nsupdate: updating %s at %s: %w", zone, p.Server, err)
	}
	if in.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("nsupdate: updating %s at %s: %s", zone, p.Server, dns.RcodeToString[in.Rcode])
	}
	return nil
}
