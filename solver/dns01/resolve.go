package dns01

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEs bounds how many CNAMEs are followed from a challenge name
// before giving up on a loop.
const maxCNAMEs = 8

// queryTimeout bounds one DNS query (and its TCP retry).
const queryTimeout = 3 * time.Second

// Resolver says where records are looked up: the recursive resolvers that
// find a record's zone, its CNAMEs and its nameservers, and the port the
// authoritative nameservers are asked on. The zero value uses the system's
// resolvers and port 53.
type Resolver struct {
	// Servers are the recursive resolvers, as host:port ("127.0.0.1:53",
	// "[::1]:5353"). Empty means those in /etc/resolv.conf.
	Servers []string

	// AuthoritativePort is the port the zone's nameservers are asked on
	// for the propagation check. Zero means 53. Tests whose nameserver's
	// NS record names 127.0.0.1 point it at their server's port.
	AuthoritativePort int
}

func (r *Resolver) servers() ([]string, error) {
	if len(r.Servers) > 0 {
		return r.Servers, nil
	}
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("no DNS resolver configured and none in /etc/resolv.conf: %w", err)
	}
	var out []string
	for _, s := range conf.Servers {
		out = append(out, net.JoinHostPort(s, conf.Port))
	}
	if len(out) == 0 {
		return nil, errors.New("no DNS resolver configured and none in /etc/resolv.conf")
	}
	return out, nil
}

// exchange sends one query to server, retrying over TCP when the answer
// was truncated.
func exchange(ctx context.Context, server string, m *dns.Msg) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	c := &dns.Client{Net: "udp", Timeout: queryTimeout}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("asking %s for %s %s: %w", server, m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], err)
	}
	return resp, nil
}

// query asks the recursive resolvers, in turn, until one answers with
// NOERROR or NXDOMAIN.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	servers, err := r.servers()
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(4096, false)
	var errs []error
	for _, s := range servers {
		resp, err := exchange(ctx, s, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s answered %s for %s %s", s, dns.RcodeToString[resp.Rcode], name, dns.TypeToString[qtype]))
	}
	return nil, errors.Join(errs...)
}

// target follows CNAMEs from name (an FQDN) and returns where the record
// really lives: name itself when there is no CNAME. This is acme-dns style
// delegation: _acme-challenge.a.example CNAME x.acme.example.net.
func (r *Resolver) target(ctx context.Context, name string) (string, error) {
	name = dns.Fqdn(name)
	for range maxCNAMEs {
		resp, err := r.query(ctx, name, dns.TypeCNAME)
		if err != nil {
			return "", err
		}
		next := ""
		for _, rr := range resp.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, name) {
				next = c.Target
			}
		}
		if next == "" {
			return name, nil
		}
		name = dns.Fqdn(strings.ToLower(next))
	}
	return "", fmt.Errorf("more than %d CNAMEs from %s: a loop?", maxCNAMEs, name)
}

// zone returns the zone apex that holds name (an FQDN): the owner of the
// SOA record in the answer or, for a name without records (NXDOMAIN or
// NODATA), in the authority section. It walks up one label at a time
// when a resolver answers neither.
func (r *Resolver) zone(ctx context.Context, name string) (string, error) {
	for cur := dns.Fqdn(name); ; {
		resp, err := r.query(ctx, cur, dns.TypeSOA)
		if err != nil {
			return "", fmt.Errorf("finding the zone of %s: %w", name, err)
		}
		for _, sec := range [][]dns.RR{resp.Answer, resp.Ns} {
			for _, rr := range sec {
				if soa, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(soa.Hdr.Name, name) {
					return strings.ToLower(soa.Hdr.Name), nil
				}
			}
		}
		i, end := dns.NextLabel(cur, 0)
		if end || cur == "." {
			return "", fmt.Errorf("finding the zone of %s: no SOA record found", name)
		}
		cur = cur[i:]
	}
}

// nameservers returns host:port of every address of every nameserver of
// zone, each with its NS name.
func (r *Resolver) nameservers(ctx context.Context, zone string) ([]nameserver, error) {
	resp, err := r.query(ctx, zone, dns.TypeNS)
	if err != nil {
		return nil, fmt.Errorf("finding the nameservers of %s: %w", zone, err)
	}
	port := 53
	if r.AuthoritativePort > 0 {
		port = r.AuthoritativePort
	}
	var out []nameserver
	for _, rr := range resp.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
			ar, err := r.query(ctx, ns.Ns, qtype)
			if err != nil {
				return nil, fmt.Errorf("resolving nameserver %s of %s: %w", ns.Ns, zone, err)
			}
			for _, a := range ar.Answer {
				var ip net.IP
				switch a := a.(type) {
				case *dns.A:
					ip = a.A
				case *dns.AAAA:
					ip = a.AAAA
				default:
					continue
				}
				out = append(out, nameserver{name: ns.Ns, addr: net.JoinHostPort(ip.String(), strconv.Itoa(port))})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("zone %s has no nameserver with an address", zone)
	}
	return out, nil
}

// nameserver is one address of one authoritative nameserver.
type nameserver struct {
	name string // its NS name
	addr string // host:port
}

// txt asks server directly (no recursion) for the TXT records of name.
func txt(ctx context.Context, server, name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	m.RecursionDesired = false
	m.SetEdns0(4096, false)
	resp, err := exchange(ctx, server, m)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s answered %s for %s TXT", server, dns.RcodeToString[resp.Rcode], name)
	}
	var out []string
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// lookupTXT returns the TXT records of name as the authoritative
// nameservers of its zone serve them (the first that answers), following
// CNAMEs: what a CA's validator sees, without a resolver's cache between.
func (r *Resolver) lookupTXT(ctx context.Context, name string) ([]string, error) {
	target, err := r.target(ctx, name)
	if err != nil {
		return nil, err
	}
	zone, err := r.zone(ctx, target)
	if err != nil {
		return nil, err
	}
	nss, err := r.nameservers(ctx, zone)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, ns := range nss {
		vals, err := txt(ctx, ns.addr, target)
		if err == nil {
			return vals, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// contains reports whether vals holds v.
func contains(vals []string, v string) bool { return slices.Contains(vals, v) }
