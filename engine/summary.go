package engine

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/redact"
	"github.com/certkeeper/certkeeper/policy"
)

// Summary describes a running configuration the way the certkeeper
// command tells it at start, whatever the log level: which names may get
// certificates, from which CAs, where they are kept, and every address it
// listens on. Without it, a proxy that refuses every name looks just like
// one that works. A Go program configured like the command can log the
// same lines (Lines). The hints in parentheses say where each setting came
// from: the command's flag ("--allow"), unless Source says otherwise.
type Summary struct {
	// Command is what starts: "proxy", "server".
	Command string
	// Dev reports whether it runs in development mode (the local CA, for
	// Allow only).
	Dev bool
	// Allow, RequireOwnIP (with OwnIPPrivate) and Ask are the checks a
	// name must pass to get a new certificate; none means none may.
	Allow                      []string
	RequireOwnIP, OwnIPPrivate bool
	Ask                        string
	// Wildcards are the zones served from one wildcard certificate each.
	Wildcards []string
	// CertFiles is how many certificates made elsewhere are served.
	CertFiles int
	// CAs is the fallback chain (empty: letsencrypt); Rules are the
	// patterns with their own chains.
	CAs   []string
	Rules []SummaryRule
	// Challenges are the challenge types tried; empty is not shown.
	Challenges []string
	// Storage says where certificates are kept.
	Storage string
	// OrderLimit is the cluster's shared order budget as given
	// ("10/1m"); empty is not shown.
	OrderLimit string
	// Managed are the names kept renewed whether or not anyone asks.
	Managed []string
	// Served are the names a front end serves by configuration (the
	// proxy's --route patterns and --default-name), each with its flag.
	// A --route pattern may get certificates whatever the checks say
	// (policy.Config.Routed); any other that Allow alone decides and does
	// not cover gets no certificate, which Warnings says.
	Served []SummaryName
	// Listeners are the addresses listened on, in the order shown.
	Listeners []SummaryListener
	// ProxyProtocolFrom are the load balancers (addresses or prefixes)
	// whose connections to the front-end's listeners start with a PROXY
	// protocol header; empty is not shown.
	ProxyProtocolFrom []string
	// LogLevel is the log level given; empty is not shown.
	LogLevel string
	// MaxConns is the most connections one listener keeps open
	// (--max-conns; 0 is connlimit.DefaultMax; a negative one, which the
	// command refuses, is not warned of), FilesPerConn the file descriptors each takes (the
	// proxy's two: the client's and the backend's; 0 is 1), and OpenFiles
	// the descriptors the process may open (its RLIMIT_NOFILE; 0 is
	// unknown, or no such limit): a MaxConns they cannot hold is warned
	// of, since past the limit connections fail with "too many open files"
	// before MaxConns refuses them.
	MaxConns, FilesPerConn int
	OpenFiles              uint64
	// Source, if not nil, says where the setting of a flag ("--allow",
	// "--tls-addr") came from, for the hint after it: the flag, a config
	// file's key ("tls_addr in /etc/certkeeper.yaml") or "default". Nil
	// shows the flag.
	Source func(flag string) string
}

// SummaryRule is a pattern with its own CA chain.
type SummaryRule struct {
	Pattern string
	CAs     []string
}

// SummaryListener is one address, what is served on it and the flag that
// sets it (Summary.Source says where its value came from). Listener is
// the name the front end opens it by, which an upgrade's hand-over keeps
// (the address shown is then the inherited socket's).
type SummaryListener struct {
	What, Addr, Flag, Listener string
	// Configured is the address configured, when Rebind found the
	// listener elsewhere (on a socket handed over by an upgrade or systemd).
	Configured string
}

// Rebind shows each listener at the address where says it is bound
// (given its Listener and Addr): after an upgrade, the socket inherited
// from the process before, which may differ from the address configured.
func (s *Summary) Rebind(where func(listener, addr string) string) {
	for i, l := range s.Listeners {
		if at := where(l.Listener, l.Addr); at != l.Addr {
			s.Listeners[i].Addr, s.Listeners[i].Configured = at, l.Addr
		}
	}
}

// SummaryName is a name (or *. pattern) a front end serves by
// configuration, and the flag that gives it.
type SummaryName struct {
	Flag, Name string
}

// Lines is s as text, a line per item and without newlines: a heading
// ("proxy starting in production mode"), then "key:" padded to 11
// characters and its value. URLs are redacted (an ask URL or a directory
// URL may carry a token).
func (s *Summary) Lines() []string {
	mode := "production mode"
	switch {
	case s.Dev:
		mode = "development mode (local CA; not for the Internet)"
	case slices.Equal(s.CAs, []string{"local"}):
		mode = "production mode with the local CA (an intranet: clients trust its root)"
	}
	lines := []string{fmt.Sprintf("%s starting in %s", s.Command, mode)}
	line := func(key, format string, args ...any) {
		lines = append(lines, fmt.Sprintf("%-11s %s", key+":", fmt.Sprintf(format, args...)))
	}
	if s.Dev {
		line("names", "%s (development mode)", strings.Join(s.Allow, ", "))
	} else {
		line("names", "%s", s.names())
	}
	if len(s.Managed) > 0 {
		line("managed", "%s (kept renewed from start)", strings.Join(s.Managed, "; "))
	}
	line("CA chain", "%s", summaryChain(s.CAs))
	for i, r := range s.Rules {
		if len(r.CAs) > 0 {
			line("CA chain", "%s for names[%d] %s", summaryChain(r.CAs), i, r.Pattern)
		}
	}
	if !s.Dev && s.usesLocalCA() {
		// Nobody trusts the local CA's root until given it: say how.
		// A storage URL is shown redacted (no user, no query): a
		// command with it would not open the storage, so name the
		// options instead of printing one that fails.
		root := "certkeeper ca root --storage " + cmdline.ShellQuote(s.Storage) + " > root.pem"
		if strings.Contains(s.Storage, "://") {
			root = "certkeeper ca root > root.pem with this " + s.Command + "'s --storage URL (and its --storage-password-file)"
		}
		line("trust", "clients need the local CA's root: %s "+
			"(curl --cacert root.pem; certkeeper ca trust on a machine)", root)
	}
	if len(s.Challenges) > 0 {
		line("challenge", "%s", strings.Join(s.Challenges, ", "))
	}
	line("storage", "%s", s.Storage)
	if n, d, err := ParseOrderLimit(s.OrderLimit); err == nil && n > 0 {
		line("orders", "at most %d new orders per %s per CA account, counted for every node on this storage (%s)",
			n, d, s.source("--order-limit"))
	}
	for _, l := range s.Listeners {
		if l.Configured != "" {
			line("listen", "%s on %s (the socket handed over by an upgrade or systemd; %s says %s: restart to listen there)",
				l.What, l.Addr, s.source(l.Flag), l.Configured)
			continue
		}
		line("listen", "%s on %s (%s)", l.What, l.Addr, s.source(l.Flag))
	}
	if len(s.ProxyProtocolFrom) > 0 {
		line("PROXY", "header required from %s, whose client address is used (%s)",
			strings.Join(s.ProxyProtocolFrom, ", "), s.source("--proxy-protocol-from"))
	}
	if s.LogLevel != "" {
		line("log level", "%s (%s)", s.LogLevel, s.source("--log-level"))
	}
	return lines
}

// usesLocalCA reports whether the local CA is in a CA chain of s.
func (s *Summary) usesLocalCA() bool {
	if slices.Contains(s.CAs, "local") {
		return true
	}
	return slices.ContainsFunc(s.Rules, func(r SummaryRule) bool { return slices.Contains(r.CAs, "local") })
}

// source says where the setting of flag came from (Source).
func (s *Summary) source(flag string) string {
	if s.Source != nil {
		return s.Source(flag)
	}
	return flag
}

// names says which names may get a new certificate: every check given
// must agree.
func (s *Summary) names() string {
	var checks []string
	if len(s.Allow) > 0 {
		checks = append(checks, "matching "+strings.Join(s.Allow, ", ")+" ("+s.source("--allow")+")")
	}
	if s.RequireOwnIP {
		what := "resolving to this host's own public addresses (" + s.source("--require-own-ip") + ")"
		if s.OwnIPPrivate {
			what = "resolving to this host's own addresses, private ones too (" + s.source("--require-own-ip") + ", " +
				s.source("--own-ip-private") + ")"
		}
		checks = append(checks, what)
	}
	if s.Ask != "" {
		checks = append(checks, "that the ask URL "+redact.URL(s.Ask)+" approves ("+s.source("--ask")+")")
	}
	var out string
	routed := s.routed()
	switch {
	case len(checks) == 0 && len(routed) > 0:
	case len(checks) == 0:
		out = "none on demand: no --allow or --ask, so only stored certificates are served"
	case len(checks) == 1:
		out = "any name " + checks[0]
	default:
		out = "any name " + strings.Join(checks, ", and ")
	}
	if len(routed) > 0 {
		r := "the routed " + strings.Join(routed, ", ") + " (" + s.source("--route") + ")"
		if out != "" {
			r += "; " + out
		}
		out = r
	}
	if len(s.Wildcards) > 0 {
		out += "; wildcard certificates for " + strings.Join(s.Wildcards, ", ") + " (" + s.source("--wildcard") + ")"
	}
	if s.CertFiles > 0 {
		out += fmt.Sprintf("; the names in %d certificate file(s) (%s)", s.CertFiles, s.source("--cert-file"))
	}
	return out
}

// routed returns the --route patterns of Served, which may get
// certificates whatever the other checks say.
func (s *Summary) routed() []string {
	var out []string
	for _, n := range s.Served {
		if n.Flag == "--route" {
			out = append(out, n.Name)
		}
	}
	return out
}

// summaryChain is a CA chain in the order it is tried, each name with the
// URL it stands for; URLs are redacted.
func summaryChain(cas []string) string {
	if len(cas) == 0 {
		cas = []string{"letsencrypt"}
	}
	out := make([]string, len(cas))
	for i, ca := range cas {
		out[i] = redact.URL(ca)
		if u := CAURL(ca); u != ca && strings.Contains(u, "://") {
			out[i] += " (" + redact.URL(u) + ")"
		}
	}
	return strings.Join(out, ", then ")
}

// Warnings are what the operator of s may not expect, one line each
// without a newline, to show after Lines: that no name gets a
// certificate on demand (no Allow, Ask or RequireOwnIP, outside
// development mode), each Allow pattern or Managed name whose chain is
// Let's Encrypt alone but that it never issues for (NotPublic), and a
// MaxConns above what OpenFiles allows.
func (s *Summary) Warnings() []string {
	var out []string
	conns, given := s.MaxConns, fmt.Sprint(s.MaxConns)
	if conns == 0 { // the default, which a container's low limit meets unwarned otherwise (a trial)
		conns, given = connlimit.DefaultMax, fmt.Sprintf("(default %d)", connlimit.DefaultMax)
	}
	if need := uint64(max(conns, 0)) * uint64(max(s.FilesPerConn, 1)); s.OpenFiles > 0 && need > s.OpenFiles {
		each := ""
		if s.FilesPerConn > 1 {
			each = fmt.Sprintf(" (%d each)", s.FilesPerConn)
		}
		out = append(out, fmt.Sprintf("--max-conns %s: one listener's connections take up to %d open files%s, but this process may open %d: "+
			"past that, new connections fail with \"too many open files\" before --max-conns refuses them; raise the limit "+
			"(LimitNOFILE= in a systemd unit, ulimit -n) or lower --max-conns", given, need, each, s.OpenFiles))
	}
	if !s.Dev && len(s.Allow) == 0 && s.Ask == "" && !s.RequireOwnIP && len(s.routed()) == 0 {
		served := "certificates already in --storage"
		if s.CertFiles > 0 {
			served += " and the --cert-file ones"
		}
		if len(s.Managed) > 0 {
			served = "the --managed names and " + served
		}
		w := "no --allow or --ask: no name gets a certificate on demand; served: only " + served
		if len(s.Wildcards) > 0 || len(s.Rules) > 0 {
			w += " (--wildcard and names entries say how a name is obtained, not which names may be)"
		}
		out = append(out, w)
	}
	if len(s.Allow) > 0 && s.Ask == "" && !s.RequireOwnIP { // Allow alone decides
		allow := policy.Allowlist(s.Allow...)
		for _, n := range s.Served {
			if n.Flag == "--route" { // allowed as routed
				continue
			}
			probe := n.Name
			if zone, ok := strings.CutPrefix(probe, "*."); ok {
				probe = "x." + zone // a name the pattern routes
			}
			if allow.Decide(context.Background(), probe) != nil {
				out = append(out, fmt.Sprintf("%s %s: no --allow pattern covers it, so it gets no certificate: add it to --allow", n.Flag, n.Name))
			}
		}
	}
	if s.Command == "proxy" && !slices.ContainsFunc(s.Served, func(n SummaryName) bool { return n.Flag == "--default-name" }) {
		for _, p := range s.Allow {
			if ip, err := netip.ParseAddr(strings.Trim(p, "[]")); err == nil {
				out = append(out, fmt.Sprintf("--allow %s: clients that connect by IP address send no SNI, so they get no certificate: "+
					"give --default-name %s", p, ip))
				break
			}
		}
	}
	if flag, w := s.openWildcard(); w != "" {
		decide := "--ask URL to decide which names"
		if flag == "--route" {
			decide = "--wildcard to serve them all from one wildcard certificate"
		}
		who := "anyone who reaches the proxy"
		if s.Command == "server" {
			who = "every client of the API (and whoever steals a token)"
		}
		out = append(out, fmt.Sprintf("%s %s: %s may choose names under it, and each new one is an order: "+
			"one client address may place 60 at once (--client-limit's default), more than Let's Encrypt's 50 new certificates a week for a registered domain; "+
			"give --order-limit (e.g. 20/1h) to cap new orders for every node together, or %s", flag, w, who, decide))
	}
	rules := make([]Rule, len(s.Rules))
	for i, r := range s.Rules {
		rules[i] = Rule{Pattern: r.Pattern, CAs: r.CAs}
	}
	var managed []string
	for _, spec := range s.Managed {
		managed = append(managed, strings.Split(spec, ",")...)
	}
	for _, names := range []struct {
		flag     string
		patterns []string
	}{{"--allow", s.Allow}, {"--route", s.routed()}, {"--managed", managed}} {
		for _, p := range NotPublic(s.CAs, rules, names.patterns) {
			out = append(out, fmt.Sprintf("%s %s: Let's Encrypt cannot issue for it (%s): for development give --ca local "+
				"(certkeeper's own CA), or your own ACME CA with --ca URL", names.flag, p.Pattern, p.Reason))
		}
	}
	return out
}

// openWildcard returns the first --route or --allow pattern (and its
// flag) of a proxy or server that lets whoever reaches it (a server: its
// clients) choose new names (a wildcard or a regular expression) with
// Let's Encrypt and nothing else to bound the orders (no --order-limit,
// and for --allow no --ask or --require-own-ip, which routes skip), or
// "": a security trial's one address placed 60 orders in 0.4 s, past
// the CA's weekly limit for the domain, and a second one's scoped token
// 100 in 21 s from a server.
func (s *Summary) openWildcard() (flag, pattern string) {
	if s.Command != "proxy" && s.Command != "server" || s.Dev || s.OrderLimit != "" ||
		len(s.CAs) > 0 && !slices.Contains(s.CAs, "letsencrypt") {
		return "", ""
	}
	open := func(p string) bool { return strings.HasPrefix(p, "*.") || strings.HasPrefix(p, "re:") }
	for _, p := range s.routed() { // allowed whatever --ask says
		if open(p) {
			return "--route", p
		}
	}
	if s.Ask != "" || s.RequireOwnIP {
		return "", ""
	}
	for _, p := range s.Allow {
		if open(p) {
			return "--allow", p
		}
	}
	return "", ""
}
