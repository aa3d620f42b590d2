package cli

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/yamlconf"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/proxy"
)

// summary is the start-up summary (engine.Summary) of a front-end
// (command "proxy" or "server") running with c; the caller adds its own
// listeners, which come before the metrics and status page's.
func summary(command string, dev bool, c *engineConfig, listeners ...engine.SummaryListener) engine.Summary {
	s := engine.Summary{Command: command, Dev: dev, Allow: c.Allow, RequireOwnIP: c.RequireOwn, OwnIPPrivate: c.OwnIPPrivate,
		Ask: c.Ask, Wildcards: c.Wildcards, CertFiles: len(c.CertFiles), CAs: c.CA, Challenges: c.Challenge,
		Storage: storageWhere(c.Storage), Listeners: listeners, LogLevel: c.LogLevel, Source: c.credit, OrderLimit: c.OrderLimit, ProxyProtocolFrom: c.ProxyFrom,
		MaxConns: c.MaxConns, OpenFiles: connlimit.OpenFiles()}
	for _, n := range c.Names {
		s.Rules = append(s.Rules, engine.SummaryRule{Pattern: n.Pattern, CAs: n.CA})
	}
	if a := c.Ops.MetricsAddr; a != "" {
		what := "metrics (/metrics, /healthz)"
		if c.Ops.shared() {
			what = "metrics (/metrics, /healthz) and status page (/, /status.json)"
		}
		s.Listeners = append(s.Listeners, engine.SummaryListener{What: what, Addr: a, Flag: "--metrics-addr", Listener: "metrics"})
	}
	if a := c.Ops.StatusAddr; a != "" && !c.Ops.shared() {
		s.Listeners = append(s.Listeners, engine.SummaryListener{What: "status page (/, /status.json, /healthz)", Addr: a, Flag: "--status-addr", Listener: "status"})
	}
	return s
}

// tries reports whether c may try challenge typ for some name: --challenge
// or a names entry names it, or --challenge names none (the default is
// every challenge the front end answers).
func (c *engineConfig) tries(typ string) bool {
	return len(c.Challenge) == 0 || slices.Contains(c.Challenge, typ) ||
		slices.ContainsFunc(c.Names, func(n nameConfig) bool { return slices.Contains(n.Challenge, typ) })
}

// credit says where each setting of cfg, read from src's file with the
// flags given laid over it, came from (engine.Summary.Source): its
// environment variable when that gave it, the flag when it was given,
// else the file's key when the file sets it, else "default".
func (src *source) credit(cfg any) func(flag string) string {
	var keys map[string]string
	if data, err := readConfig(src.file); err == nil {
		keys = yamlconf.Given(data, reflect.TypeOf(cfg).Elem())
	}
	return func(flag string) string {
		name := strings.TrimPrefix(flag, "--")
		key, inFile := keys[strings.ReplaceAll(name, "-", "_")]
		switch v, env := src.env[name]; {
		case env:
			return "$" + v
		case src.set[name]:
			return flag
		case inFile:
			return key + " in " + src.file
		}
		return "default"
	}
}

// proxySummary is the proxy's start-up summary. A listener names a
// challenge only if one is tried there (not with --challenge dns-01 alone).
func proxySummary(cfg *proxyConfig, dev bool) engine.Summary {
	https, redirect := "HTTPS", "redirects to HTTPS"
	if cfg.tries(acmeca.TLSALPN01) {
		https = "HTTPS (and tls-alpn-01)"
	}
	if cfg.tries(acmeca.HTTP01) {
		redirect = "http-01 and " + redirect
	}
	ls := []engine.SummaryListener{{What: https, Addr: cfg.TLSAddr, Flag: "--tls-addr", Listener: "tls"}}
	if cfg.HTTPAddr != "" {
		ls = append(ls, engine.SummaryListener{What: redirect, Addr: cfg.HTTPAddr, Flag: "--http-addr", Listener: "http"})
	}
	s := summary("proxy", dev, &cfg.engineConfig, ls...)
	s.FilesPerConn = 2 // the client's and the backend's
	for _, pattern := range (proxy.Backends{Routes: cfg.Routes}).Patterns() {
		s.Served = append(s.Served, engine.SummaryName{Flag: "--route", Name: pattern})
	}
	if cfg.DefaultName != "" {
		s.Served = append(s.Served, engine.SummaryName{Flag: "--default-name", Name: cfg.DefaultName})
	}
	return s
}

// serverSummary is the certificate server's start-up summary. A listener
// names http-01 only if it is tried; with --api-cert, --http-addr answers
// http-01 and /healthz alone.
func serverSummary(cfg *serverConfig) engine.Summary {
	api, plain, http01 := "API (HTTP)", "API (HTTP)", ""
	if cfg.tries(acmeca.HTTP01) {
		http01 = " and http-01"
	}
	if cfg.APICert != "" {
		api, plain = "API (HTTPS)", "/healthz (the API is HTTPS on --listen)"
	}
	ls := []engine.SummaryListener{{What: api + http01, Addr: cfg.Listen, Flag: "--listen", Listener: "listen"}}
	if cfg.HTTPAddr != "" {
		ls = append(ls, engine.SummaryListener{What: plain + http01, Addr: cfg.HTTPAddr, Flag: "--http-addr", Listener: "http-addr"})
	}
	if cfg.TLSAddr != "" {
		ls = append(ls, engine.SummaryListener{What: "tls-alpn-01 (validation only)", Addr: cfg.TLSAddr, Flag: "--tls-alpn-addr", Listener: "tls-alpn-addr"})
	}
	s := summary("server", false, &cfg.engineConfig, ls...)
	s.Managed = cfg.Managed
	return s
}

// printStartup writes s to env's stderr, a line per item, each starting
// with "certkeeper: ".
func printStartup(env *Env, s engine.Summary) {
	fmt.Fprint(env.Stderr, "certkeeper: "+strings.Join(s.Lines(), "\ncertkeeper: ")+"\n") // one write
	printWarnings(env, s)
}

// printWarnings writes s's warnings (engine.Summary.Warnings) to env's
// stderr.
func printWarnings(env *Env, s engine.Summary) {
	for _, w := range s.Warnings() {
		fmt.Fprintf(env.Stderr, "certkeeper: warning: %s\n", w)
	}
}
