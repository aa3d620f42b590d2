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

// queryTimeout bounds one DNS query (its UDP tries and its TCP retry).
const queryTimeout = 3 * time.Second

// udpTries is how many times a query over UDP is sent, each waiting a
// third of queryTimeout: a datagram lost on the way there or back (a
// server busy on its one thread, a full socket buffer) costs a second, not
// the whole query, as dig's +tries=3 and the system resolver retry.
const udpTries = 3

// Resolver says where records are looked up: the recursive resolvers that
// find a record's zone, its CNAMEs and its nameservers, and the port the
// authoritative nameservers are asked on. The zero value uses the system's
// resolvers and port 53.
type Resolver struct {
	// Servers are the recursive resolvers, as host:port ("127.0.0.1:53",
	// "[::1]:5353"), port 53 if omitted ("1.1.1.1", "::1", as
	// /etc/resolv.conf writes them). Empty means those in
	// /etc/resolv.conf.
	Servers []string

	// AuthoritativePort is the port the zone's nameservers are asked on
	// for the propagation check. Zero means 53. Tests whose nameserver's
	// NS record names 127.0.0.1 point it at their server's port.
	AuthoritativePort int

	// Primary is the host:port (port 53 if omitted) of the primary server
	// the provider changes, when the caller knows it (RFC 2136's server).
	// It is authoritative, so it is asked for a zone's SOA when the
	// resolvers do not know the zone (a hidden primary, an internal zone,
	// split-horizon DNS), and the propagation check asks it for the record
	// besides the zone's nameservers (or alone, when the resolvers cannot
	// name them). Empty means none.
	Primary string

	// Zones are zones named outright: a record under one of them (the
	// longest that holds it) is put there with no SOA lookup. Names may
	// end in a dot. Empty means every zone is looked up. A record under
	// none of them is looked up too, and Solver.Present logs a warning:
	// a zone named for one name of a certificate need not hold the others,
	// but one that holds none of them is likely a mistake (trial 19).
	Zones []string
}

// ZoneError says that no server asked knew the zone of a name: every
// resolver and the primary, with what each answered.
type ZoneError struct {
	Name      string   // the FQDN whose zone was looked for
	Resolvers []string // the recursive resolvers asked
	Primary   string   // the primary asked, "" for none
	Err       error    // what they answered
	// NoAnswer is set when no server asked answered at all (connection
	// refused, timed out): the servers are down or the addresses wrong,
	// and naming the zone would not help.
	NoAnswer bool
}

func (e *ZoneError) Error() string {
	resolvers := strings.Join(e.Resolvers, ", ")
	if resolvers == "" {
		resolvers = "(none configured)"
	}
	asked := fmt.Sprintf("the resolvers %s (Resolver.Servers)", resolvers)
	if slices.Contains(e.Resolvers, e.Primary) {
		asked = fmt.Sprintf("%s, the primary (Resolver.Primary) among them", asked)
	} else if e.Primary != "" {
		asked += fmt.Sprintf(" and the primary %s (Resolver.Primary)", e.Primary)
	} else {
		asked += " and no primary (Resolver.Primary)"
	}
	if e.NoAnswer {
		addrs := slices.Clone(e.Resolvers)
		if e.Primary != "" && !slices.Contains(addrs, e.Primary) {
			addrs = append(addrs, e.Primary)
		}
		return fmt.Sprintf("finding the zone of %s: no DNS server answered (%s): is it running and reachable at %s? asked %s: %v",
			e.Name, strings.Join(briefs(e.Err), " / "), strings.Join(addrs, ", "), asked, e.Err)
	}
	return fmt.Sprintf("finding the zone of %s: asked %s: %v; name the zone in Resolver.Zones, "+
		"or point Resolver.Servers or Resolver.Primary at a server that knows it", e.Name, asked, e.Err)
}

// noAnswer reports whether every query in err (a join of one error per
// server asked) got no answer, rather than an answer with an error rcode
// or without the SOA.
func noAnswer(err error) bool {
	if err == nil {
		return false
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		errs := u.Unwrap()
		for _, e := range errs {
			if !noAnswer(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	return unreachable(err)
}

// briefs are the distinct root causes in err, e.g. "connection refused".
func briefs(err error) []string {
	var out []string
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range u.Unwrap() {
			for _, b := range briefs(e) {
				if !slices.Contains(out, b) {
					out = append(out, b)
				}
			}
		}
		return out
	}
	return []string{brief(err)}
}

func (e *ZoneError) Unwrap() error { return e.Err }

// primary returns Primary as host:port.
func (r *Resolver) primary() string {
	if r.Primary == "" || hasPort(r.Primary) {
		return r.Primary
	}
	return net.JoinHostPort(strings.Trim(r.Primary, "[]"), "53")
}

// hasPort reports whether addr is host:port rather than a host alone.
func hasPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

// knownZone returns the longest of Zones that holds name, or "".
func (r *Resolver) knownZone(name string) string {
	best := ""
	for _, z := range r.Zones {
		z = dns.Fqdn(strings.ToLower(z))
		if dns.IsSubDomain(z, name) && len(z) > len(best) {
			best = z
		}
	}
	return best
}

// queryPrimary asks the primary directly (no recursion) and accepts
// NOERROR or NXDOMAIN.
func (r *Resolver) queryPrimary(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	m.SetEdns0(4096, false)
	resp, err := exchange(ctx, r.primary(), m)
	if err != nil {
		return nil, err
	}
	if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s answered %s for %s %s", r.primary(), dns.RcodeToString[resp.Rcode], name, dns.TypeToString[qtype])
	}
	return resp, nil
}

func (r *Resolver) servers() ([]string, error) {
	if len(r.Servers) > 0 {
		out := make([]string, len(r.Servers))
		for i, s := range r.Servers {
			if out[i] = s; !hasPort(s) {
				out[i] = net.JoinHostPort(strings.Trim(s, "[]"), "53")
			}
		}
		return out, nil
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
	c := &dns.Client{Net: "udp", Timeout: queryTimeout / udpTries}
	var resp *dns.Msg
	var err error
	for range udpTries {
		var ne net.Error
		if resp, _, err = c.ExchangeContext(ctx, m, server); err == nil || ctx.Err() != nil || !errors.As(err, &ne) || !ne.Timeout() {
			break
		}
	}
	if err == nil && resp.Truncated {
		c.Net, c.Timeout = "tcp", queryTimeout
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
		if err != nil && r.Primary != "" {
			// The resolvers may not know a hidden primary's zone.
			var perr error
			if resp, perr = r.queryPrimary(ctx, name, dns.TypeCNAME); perr != nil {
				err = errors.Join(err, perr)
			} else {
				err = nil
			}
		}
		if err != nil {
			if r.knownZone(name) != "" {
				return name, nil // nobody serves the zone named outright: no CNAME to follow
			}
			if _, zerr := r.zone(ctx, name); zerr != nil {
				return "", zerr // no server knows the zone: say which were asked
			}
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

// zone returns the zone apex that holds name (an FQDN): one of Zones, or
// the owner of the SOA record the resolvers, then the primary, answer with
// (in the answer or, for a name without records, the authority section).
func (r *Resolver) zone(ctx context.Context, name string) (string, error) {
	name = dns.Fqdn(strings.ToLower(name))
	if z := r.knownZone(name); z != "" {
		return z, nil
	}
	zone, err := soaOwner(ctx, name, r.query)
	if err == nil {
		return zone, nil
	}
	servers, _ := r.servers()
	zerr := &ZoneError{Name: name, Resolvers: servers, Primary: r.primary(), Err: err, NoAnswer: noAnswer(err)}
	if r.Primary == "" || slices.Contains(servers, r.primary()) {
		return "", zerr // a primary that is also a resolver has answered already
	}
	zone, perr := soaOwner(ctx, name, r.queryPrimary)
	if perr == nil {
		return zone, nil
	}
	zerr.Err = fmt.Errorf("resolvers: %w; primary: %w", err, perr)
	zerr.NoAnswer = noAnswer(err) && noAnswer(perr)
	return "", zerr
}

// soaOwner walks up from name one label at a time, asking query for the
// SOA, until an answer names the zone that holds name.
func soaOwner(ctx context.Context, name string, query func(context.Context, string, uint16) (*dns.Msg, error)) (string, error) {
	for cur := name; ; {
		resp, err := query(ctx, cur, dns.TypeSOA)
		if err != nil {
			return "", err
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
			return "", errors.New("no SOA record found")
		}
		cur = cur[i:]
	}
}

// checkServers returns the servers the propagation check asks for a
// record in zone: every address of the zone's nameservers and the
// primary. When the resolvers cannot name the nameservers, those of known
// (an earlier check's) are asked again: a resolver that did not answer
// once (a loaded machine) must not drop the secondaries from the check,
// which the primary alone would then pass. With none known, the primary
// alone is asked (a hidden primary the resolvers do not know).
func (r *Resolver) checkServers(ctx context.Context, zone string, known []nameserver) ([]nameserver, error) {
	nss, err := r.nameservers(ctx, zone)
	if err != nil && len(known) > 0 {
		return known, nil
	}
	p := r.primary()
	if p == "" {
		return nss, err
	}
	if err != nil {
		return []nameserver{{name: "primary", addr: p}}, nil
	}
	for _, ns := range nss {
		if ns.addr == p {
			return nss, nil
		}
	}
	return append(nss, nameserver{name: "primary", addr: p}), nil
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
		return nil, &rcodeError{server: server, name: name, rcode: resp.Rcode}
	}
	var out []string
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// rcodeError is a TXT query a server answered with an error rcode.
type rcodeError struct {
	server, name string
	rcode        int
}

func (e *rcodeError) Error() string {
	return fmt.Sprintf("%s answered %s for %s TXT", e.server, dns.RcodeToString[e.rcode], e.name)
}

// refusing reports whether err is an answer REFUSED or NOTAUTH: the
// server will not answer for the zone, as one that does not serve it
// answers, so no wait makes it serve the record.
func refusing(err error) bool {
	var re *rcodeError
	return errors.As(err, &re) && (re.rcode == dns.RcodeRefused || re.rcode == dns.RcodeNotAuth)
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
	nss, err := r.checkServers(ctx, zone, nil)
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
