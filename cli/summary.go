package cli

import (
	"fmt"
	"strings"

	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/redact"
)

// startSummary is what a long-running command tells at start, whatever
// the log level: which names may get certificates, from which CAs, where
// they are kept, and every address it listens on. Without it, a proxy
// that refuses every name looks just like one that works.
type startSummary struct {
	// Command is the subcommand: "proxy", "server".
	Command string
	// Dev reports whether it runs in development mode.
	Dev bool
	// Engine is the shared configuration (policy, CAs, storage, ops).
	Engine *engineConfig
	// Managed are the names kept whether or not anyone asks (server
	// --managed).
	Managed []string
	// Listeners are the front-end's own addresses; the metrics and status
	// addresses are added from Engine.Ops.
	Listeners []summaryListener
}

// summaryListener is one address and what is served on it.
type summaryListener struct {
	What, Addr, Flag string
}

// proxySummary is the proxy's start-up summary.
func proxySummary(cfg *proxyConfig, dev bool) startSummary {
	s := startSummary{Command: "proxy", Dev: dev, Engine: &cfg.engineConfig}
	s.Listeners = append(s.Listeners, summaryListener{"HTTPS (and tls-alpn-01)", cfg.TLSAddr, "--tls-addr"})
	if cfg.HTTPAddr != "" {
		s.Listeners = append(s.Listeners, summaryListener{"http-01 and redirects to HTTPS", cfg.HTTPAddr, "--http-addr"})
	}
	return s
}

// serverSummary is the certificate server's start-up summary.
func serverSummary(cfg *serverConfig) startSummary {
	s := startSummary{Command: "server", Engine: &cfg.engineConfig, Managed: cfg.Managed}
	api := "API (HTTP) and http-01"
	if cfg.APICert != "" {
		api = "API (HTTPS)"
	}
	s.Listeners = append(s.Listeners, summaryListener{api, cfg.Listen, "--listen"})
	if cfg.HTTPAddr != "" {
		s.Listeners = append(s.Listeners, summaryListener{"API (HTTP) and http-01", cfg.HTTPAddr, "--http-addr"})
	}
	if cfg.TLSAddr != "" {
		s.Listeners = append(s.Listeners, summaryListener{"tls-alpn-01 (validation only)", cfg.TLSAddr, "--tls-alpn-addr"})
	}
	return s
}

// printStartup writes s to env's stderr, a line per item, each starting
// with "certkeeper: ".
func printStartup(env *Env, s startSummary) {
	var b strings.Builder
	line := func(key, format string, args ...any) {
		fmt.Fprintf(&b, "certkeeper: %-11s %s\n", key+":", fmt.Sprintf(format, args...))
	}
	mode := "production mode"
	if s.Dev {
		mode = "development mode (local CA; not for the Internet)"
	}
	fmt.Fprintf(&b, "certkeeper: %s starting in %s\n", s.Command, mode)
	c := s.Engine
	if s.Dev {
		line("names", "%s (development mode)", strings.Join(c.Allow, ", "))
	} else {
		line("names", "%s", summaryNames(c))
	}
	if len(s.Managed) > 0 {
		line("managed", "%s (kept renewed from start)", strings.Join(s.Managed, "; "))
	}
	line("CA chain", "%s", summaryChain(c.CA))
	for i, n := range c.Names {
		if len(n.CA) > 0 {
			line("CA chain", "%s for names[%d] %s", summaryChain(n.CA), i, n.Pattern)
		}
	}
	if len(c.Challenge) > 0 {
		line("challenge", "%s", strings.Join(c.Challenge, ", "))
	}
	line("storage", "%s", storageWhere(c.Storage))
	listeners := s.Listeners
	if a := c.Ops.MetricsAddr; a != "" {
		what := "metrics (/metrics)"
		if c.Ops.shared() {
			what = "metrics (/metrics) and status page (/, /status.json)"
		}
		listeners = append(listeners, summaryListener{what, a, "--metrics-addr"})
	}
	if a := c.Ops.StatusAddr; a != "" && !c.Ops.shared() {
		listeners = append(listeners, summaryListener{"status page (/, /status.json)", a, "--status-addr"})
	}
	for _, l := range listeners {
		line("listen", "%s on %s (%s)", l.What, l.Addr, l.Flag)
	}
	if c.LogLevel != "" {
		line("log level", "%s (--log-level)", c.LogLevel)
	}
	fmt.Fprint(env.Stderr, b.String())
}

// summaryNames says which names may get a new certificate: every check
// given must agree (policy()).
func summaryNames(c *engineConfig) string {
	var checks []string
	if len(c.Allow) > 0 {
		checks = append(checks, "matching "+strings.Join(c.Allow, ", ")+" (--allow)")
	}
	if c.RequireOwn {
		what := "resolving to this host's own public addresses (--require-own-ip)"
		if c.OwnIPPrivate {
			what = "resolving to this host's own addresses, private ones too (--require-own-ip --own-ip-private)"
		}
		checks = append(checks, what)
	}
	if c.Ask != "" {
		checks = append(checks, "that the ask URL "+redact.URL(c.Ask)+" approves (--ask)")
	}
	var out string
	switch len(checks) {
	case 0:
		out = "none on demand: no --allow or --ask, so only stored certificates are served"
	case 1:
		out = "any name " + checks[0]
	default:
		out = "any name " + strings.Join(checks, ", and ")
	}
	if len(c.Wildcards) > 0 {
		out += "; wildcard certificates for " + strings.Join(c.Wildcards, ", ") + " (--wildcard)"
	}
	if len(c.CertFiles) > 0 {
		out += fmt.Sprintf("; the names in %d --cert-file certificate(s)", len(c.CertFiles))
	}
	return out
}

// summaryChain is a --ca chain in the order it is tried; URLs are
// redacted (a directory URL may carry a token).
func summaryChain(cas []string) string {
	if len(cas) == 0 {
		cas = []string{"letsencrypt"}
	}
	out := make([]string, len(cas))
	for i, ca := range cas {
		out[i] = redact.URL(ca)
		if u := engine.CAURL(ca); u != ca && strings.Contains(u, "://") {
			out[i] += " (" + redact.URL(u) + ")"
		}
	}
	return strings.Join(out, ", then ")
}
