package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/logsetup"
	"github.com/certkeeper/certkeeper/internal/loopback"
	"github.com/certkeeper/certkeeper/internal/serveloop"
	"github.com/certkeeper/certkeeper/internal/upgrade"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/monitor"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver/tlsalpn01"
)

// serverConfig is the certificate server's configuration: the engine's
// (shared with the proxy) plus its own; docs/config.md documents each key.
type serverConfig struct {
	engineConfig       `yaml:",inline"`
	Listen             string        `yaml:"listen" arg:"ADDR" default:"127.0.0.1:8999" help:"ADDR of the API (and of http-01 answers under /.well-known/acme-challenge/)"`
	TokenFile          string        `yaml:"token_file" arg:"FILE" help:"FILE of bearer tokens, one per line, that may fetch certificates and keys (a line\n\"TOKEN names=*.a.example,b.example\" may fetch only those names); refused if group or others may read it\n(chmod 600); SIGHUP reloads it"`
	ClientCA           string        `yaml:"client_ca" arg:"FILE" help:"PEM FILE of CAs whose client certificates may fetch certificates and keys\n(mutual TLS; needs --api-cert)"`
	NoAuth             bool          `yaml:"no_auth" help:"hand out certificates and keys without a token or client certificate to every process of this\nhost that can reach --listen (loopback only); for a host or container where every process may have them"`
	APICert            string        `yaml:"api_cert" arg:"CERT:KEY" help:"CERT:KEY files: serve the API over HTTPS with this certificate; SIGHUP reads them again"`
	Managed            []string      `yaml:"managed" arg:"NAME" help:"NAME to obtain at start and keep renewed whether or not anyone asks for it\n(a,b for one certificate with several names); repeatable"`
	SelfSignedFallback bool          `yaml:"self_signed_fallback" help:"answer names that cannot get a real certificate (refused, issuance failing)\nwith a self-signed one, marked \"self_signed\": true"`
	IssueTimeout       time.Duration `yaml:"issue_timeout" arg:"DURATION" help:"a request for a new name waits up to DURATION for its issuance, then gets a 503"`
	MaxTTL             time.Duration `yaml:"max_ttl" arg:"DURATION" help:"clients keep an answer at most DURATION (ttl_seconds) before asking again: how long a\nreplaced (say, revoked) certificate may still be served by them"`
	AuditLog           string        `yaml:"audit_log" arg:"FILE" help:"append the audit log (a JSON line per key handed out) to FILE (default: stderr, as the log);\nwhile it cannot be written, key fetches get 503"`
	AuditFailOpen      bool          `yaml:"audit_fail_open" help:"hand out keys even while --audit-log cannot be written (the failures are still logged)"`
	Drain              time.Duration `yaml:"drain" arg:"DURATION" default:"10s" help:"on SIGINT or SIGTERM, open requests get up to DURATION to finish before they are closed"`
	HTTPAddr           string        `yaml:"http_addr" arg:"ADDR" help:"ADDR to also serve the API and http-01 on (e.g. :80; http-01 alone with --api-cert); off unless given"`
	// --tls-addr is the proxy's HTTPS listener: here it is a deprecated
	// name of --tls-alpn-addr.
	TLSAddr string `yaml:"tls_alpn_addr" alias:"tls_addr" arg:"ADDR" deprecated:"tls-addr" help:"ADDR to answer tls-alpn-01 on (e.g. :443); off unless given. Only the CA's validation\nhandshakes complete there: the API is never served on it"`
}

// serverChallengeHelp is the usage of the server's --challenge.
const serverChallengeHelp = "challenge `TYPE` to use: http-01 (answered on --listen), tls-alpn-01 (needs --tls-alpn-addr),\n" +
	"dns-01 (needs --dns), dns-persist-01; repeatable (default: http-01, plus tls-alpn-01 with\n--tls-alpn-addr and dns-01 with --dns)"

func serverCmd() *Command {
	c := &serverConfig{IssueTimeout: certserver.DefaultIssueTimeout, MaxTTL: certserver.DefaultMaxTTL, engineConfig: engineConfig{Ops: defaultOps()}}
	var src source
	return &Command{
		UsageLine: "certkeeper server [flags]",
		Serves:    true,
		Short:     "central certificate server for a fleet of web servers",
		Flags:     func(fs *flag.FlagSet) { src.register(fs, c, &c.engineConfig, serverChallengeHelp) },
		ArgsHint:  "names go with --allow or --managed (e.g. --allow a.example)",
		Run: func(ctx context.Context, env *Env, args []string) error {
			src.parsed(env, &c.engineConfig)
			load := func() (*serverConfig, error) { return loadServerConfig(&src, c) }
			cfg, err := load()
			if src.check {
				if err != nil {
					return reportCheck(env, []error{err})
				}
				return reportCheck(env, src.attributeAll(c, cfg.check(env)))
			}
			if err != nil {
				return err
			}
			if err := cfg.applyLogging(env, &c.engineConfig); err != nil {
				return err
			}
			if src.file == "" {
				load = nil // SIGHUP has no file to read again
			}
			return src.attribute(c, runServer(ctx, env, cfg, load))
		},
	}
}

// loadServerConfig reads file (if any) and lays the flags that were set
// on top.
func loadServerConfig(src *source, flags *serverConfig) (*serverConfig, error) {
	cfg := &serverConfig{}
	if err := readConfigFile(src.file, cfg); err != nil {
		return nil, err
	}
	// Flags with a default apply it when the file has no value either.
	overlay(cfg, flags, &cfg.engineConfig, src.set, "listen", "issue-timeout", "max-ttl", "drain")
	src.noteFlags(cfg, &cfg.engineConfig)
	cfg.credit = src.credit(cfg)
	return cfg, nil
}

// runServer serves until ctx ends, an upgrade (SIGUSR2) hands its
// listeners to a new process, or a listener fails. reload reads the
// configuration again on SIGHUP: the policy (allow, ask, require-own-ip, own-ip-private)
// changes at once; other settings need a restart or an upgrade.
func runServer(ctx context.Context, env *Env, cfg *serverConfig, reload func() (*serverConfig, error)) error {
	h, apiTLS, closeAudit, err := serverHandler(env, cfg)
	if err != nil {
		return err
	}
	defer closeAudit()
	pol, err := cfg.policy()
	if err != nil {
		return err
	}
	var current atomic.Pointer[policy.Policy]
	current.Store(&pol)
	last := cfg // the configuration a reload tells its changes from
	return (&service{
		cfg: &cfg.engineConfig, fe: cfg.frontEnd(), summary: serverSummary(cfg), drain: cfg.Drain,
		policy: func() policy.Policy { return *current.Load() }, api: h,
		setup: func(m *certkeeper.Manager) {
			m.SelfSignedFallback = cfg.SelfSignedFallback
			h.Manager = m
			h.Metrics = metrics.ServerHandler(h)
		},
		reload: func() (err error) { last, err = reloadServer(env, h, apiTLS, cfg, last, reload, &current); return err },
		listen: func(loop *serveloop.Loop, _ *upgrade.Upgrader, m *certkeeper.Manager) error {
			if err := serverListen(loop, env, cfg, h, apiTLS.Config(), m); err != nil {
				return err
			}
			for _, spec := range cfg.Managed {
				go m.Keep(ctx, strings.Split(spec, ",")...) // nil, or ctx's error at shutdown: nothing to report
			}
			return nil
		},
	}).serve(ctx, env)
}

// serverHandler is the API handler cfg describes, but for its Manager:
// the tokens, who else may fetch keys, the audit log (closeAudit closes
// it); and the TLS files of --listen (nil for plain HTTP).
func serverHandler(env *Env, cfg *serverConfig) (h *certserver.Handler, apiTLS *certserver.TLSFiles, closeAudit func(), err error) {
	h = &certserver.Handler{IssueTimeout: cfg.IssueTimeout, MaxTTL: cfg.MaxTTL, Logger: env.Logger, LimitClients: cfg.ClientLimit != ""}
	if err := cfg.checkAddrs(); err != nil {
		return nil, nil, nil, err
	}
	if cfg.TokenFile != "" {
		if h.Tokens, err = certserver.LoadTokens(cfg.TokenFile); err != nil {
			return nil, nil, nil, fmt.Errorf("--token-file: %w", err)
		}
	}
	if apiTLS, err = apiTLSConfig(cfg); err != nil {
		return nil, nil, nil, err
	}
	if err := cfg.Ops.check(); err != nil {
		return nil, nil, nil, err
	}
	if err := cfg.checkManaged(); err != nil {
		return nil, nil, nil, err
	}
	if err := cfg.checkAnonymous(); err != nil {
		return nil, nil, nil, err
	}
	if h.Anonymous = h.Tokens == nil && cfg.ClientCA == ""; h.Anonymous {
		fmt.Fprintln(env.Stderr, anonymousWarning)
	}
	cfg.warnPlainAPI(env)
	closeAudit, err = openAudit(h, cfg.AuditLog, cfg.AuditFailOpen, env)
	if err != nil {
		return nil, nil, nil, err
	}
	return h, apiTLS, closeAudit, nil
}

// serverListen starts the server's listeners: the API on --listen (over
// TLS with tc) and --http-addr (http-01 alone with --api-cert: the API's
// tokens and keys do not cross in clear), tls-alpn-01 only on --tls-alpn-addr.
func serverListen(loop *serveloop.Loop, env *Env, cfg *serverConfig, h *certserver.Handler, tc *tls.Config, m *certkeeper.Manager) error {
	plain, plainWhat := http.Handler(h), "the API and http-01"
	if cfg.APICert != "" {
		plain, plainWhat = h.ChallengesOnly(), "http-01; the API is HTTPS on --listen"
	}
	for _, l := range []struct {
		addr, flag, what string
		h                http.Handler
		tc               *tls.Config
	}{
		{cfg.Listen, "--listen", "the API", h, tc},
		{cfg.HTTPAddr, "--http-addr", plainWhat, plain, nil},
		{cfg.TLSAddr, "--tls-alpn-addr", "tls-alpn-01", http.NotFoundHandler(), tlsalpn01.ChallengeOnly(m.GetCertificate)},
	} {
		if l.addr == "" && l.flag != "--listen" {
			continue
		}
		ln, err := loop.ListenHTTP(strings.TrimPrefix(l.flag, "--"), l.addr, l.h, l.tc)
		if err != nil {
			return cmdline.ListenError(err, l.addr, l.flag, l.what)
		} else if h.Anonymous && l.h == http.Handler(h) && !loopback.Addr(ln.Addr().String()) { // checkAnonymous saw the flag, not a socket handed over
			return usagef("%s: the socket handed over (by systemd or an upgrade) is bound to %s, beyond loopback, where no credential is asked: bind it to 127.0.0.1, or give --token-file", l.flag, ln.Addr())
		}
		fmt.Fprintf(env.Stderr, "certkeeper: server listening on %s (%s)\n", ln.Addr(), l.what)
	}
	return nil
}

// reloadServer reads the configuration again (SIGHUP): the policy
// changes at once, and the token file and --api-cert are read again even
// if the configuration is broken, since a revocation must not wait for a
// fixed config. reload is nil without --config: then only those files
// are. It returns the configuration in force: next, or last (the one
// before) with the error that refused next.
func reloadServer(env *Env, h *certserver.Handler, apiTLS *certserver.TLSFiles, cfg, last *serverConfig, reload func() (*serverConfig, error), current *atomic.Pointer[policy.Policy]) (*serverConfig, error) {
	warnKeysChanged(env, &cfg.DNS, cfg.keyDigests)
	if reload == nil {
		env.Logger.Info("SIGHUP: no --config file to read again; only the token file is read again")
		h.ReloadTokenFile(cfg.TokenFile, cfg.TokenFile)
		h.ReloadTLS(apiTLS)
		return last, nil
	}
	next, err := reload()
	var p policy.Policy
	if err == nil {
		if p, err = next.policy(); err == nil && p == nil && *current.Load() != nil {
			err = errAllowsNone
		}
		err = cmdline.Attribute(err, next.credit)
	}
	if err != nil {
		h.ReloadTokenFile(cfg.TokenFile, cfg.TokenFile)
		h.ReloadTLS(apiTLS)
		return last, err
	}
	current.Store(&p)
	logReloaded(env, "configuration reloaded: its policy and token file apply now", last, cfg, next, []string{"token_file"})
	warnStillServed(env, h.Manager, &last.engineConfig, &next.engineConfig)
	next.printNotes(env)
	printWarnings(env, serverSummary(next))
	h.ReloadTokenFile(cfg.TokenFile, next.TokenFile)
	h.ReloadTLS(apiTLS)
	return next, nil
}

// anonymousWarning is said at start and by --check-config without a
// credential: any process of the host may fetch keys.
const anonymousWarning = "certkeeper: warning: no --token-file or --client-ca: every local process, whichever user runs it, may fetch private keys"

// frontEnd is what the server offers the engine.
func (c *serverConfig) frontEnd() frontEnd {
	return frontEnd{http01: true, alpn: c.TLSAddr != "", alpnVia: "--tls-alpn-addr (e.g. :443), where the CA connects", userAgent: "server", managed: c.Managed}
}

// check is server --check-config: everything runServer checks before it
// opens storage and listens (tokens, TLS files, who may reach the API,
// policy, CAs), every error found. The audit log is not opened: that
// would create it.
func (c *serverConfig) check(env *Env) []error {
	var errs []error
	var tokens bool
	if c.TokenFile != "" {
		if _, err := certserver.LoadTokens(c.TokenFile); err != nil {
			errs = append(errs, fmt.Errorf("--token-file: %w", err))
		}
		tokens = true
	}
	if _, err := apiTLSConfig(c); err != nil {
		errs = append(errs, err)
	}
	addrErr := c.checkAddrs()
	if addrErr != nil {
		errs = append(errs, addrErr)
	}
	if addrErr == nil {
		if err := c.checkAnonymous(); err != nil {
			errs = append(errs, err)
		} else if !tokens && c.ClientCA == "" {
			fmt.Fprintln(env.Stderr, anonymousWarning)
		}
	}
	if addrErr == nil && (tokens || c.ClientCA != "") { // without, beyond loopback is refused above
		c.warnPlainAPI(env)
	}
	printWarnings(env, serverSummary(c))
	if err := c.checkManaged(); err != nil {
		errs = append(errs, err)
	}
	return append(errs, c.engineConfig.check(env, c.frontEnd(), false)...)
}

// checkManaged checks the names of each --managed certificate as
// Manager.Cert does (it would retry an invalid one forever).
func (c *serverConfig) checkManaged() error {
	for _, spec := range c.Managed {
		names, err := (hostname.Normalizer{AllowIP: true, AllowWildcard: true}).NormalizeAll(strings.Split(spec, ","))
		if err != nil {
			return usagef("--managed %s: %v", spec, err)
		}
		if slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "*.") }) && len(c.Names) == 0 &&
			!engine.ValidatesWildcards(c.Challenge, c.DNS.Provider != "", c.CA) {
			return usagef("--managed %s: a wildcard is validated only through DNS: give --dns (dns-01; see docs/dns.md) or --challenge dns-persist-01", spec)
		}
	}
	return nil
}

// checkAddrs checks the syntax of the server's listen addresses and of
// --proxy-protocol-from, and --drain.
func (c *serverConfig) checkAddrs() error {
	if err := c.parseProxyFrom(); err != nil {
		return err
	}
	if c.Drain <= 0 {
		return usagef("--drain %s: must be positive (how long open requests get to finish at a stop)", c.Drain)
	}
	main := []string{"--listen", c.Listen, "--http-addr", c.HTTPAddr, "--tls-alpn-addr", c.TLSAddr}
	return errors.Join(cmdline.CheckListenAddrs(main...),
		cmdline.CheckSeparatePorts(main, "--metrics-addr", c.Ops.MetricsAddr, "--status-addr", c.Ops.StatusAddr))
}

// checkAnonymous refuses a configuration without authentication (no
// --token-file, no --client-ca) unless --no-auth opts in, and even then
// one in which a listener that serves the API (its keys, its /metrics)
// is reachable beyond loopback. --tls-alpn-addr is not one of them: it
// completes only tls-alpn-01 handshakes and serves no HTTP
// (tlsalpn01.ChallengeOnly). --no-auth beside a credential is refused.
func (c *serverConfig) checkAnonymous() error {
	if c.TokenFile != "" || c.ClientCA != "" {
		if c.NoAuth {
			return usagef("--no-auth with --token-file or --client-ca: drop --no-auth, every client then needs the credential")
		}
		return nil
	}
	for _, l := range []struct{ addr, flag string }{{c.Listen, "--listen"}, {c.HTTPAddr, "--http-addr"}} {
		if l.addr != "" && !monitor.Loopback(l.addr) {
			return usagef("%s %s is reachable beyond loopback and would hand out private keys without authentication: "+
				"give --token-file (or --client-ca with --api-cert), or listen on 127.0.0.1", l.flag, l.addr)
		}
	}
	if !c.NoAuth {
		return usagef("no --token-file or --client-ca: every process of this host, whichever user runs it, could fetch private keys from --listen %s: "+
			"give --token-file FILE (docs/server.md), or --no-auth on a host where every process may have them", c.Listen)
	}
	return nil
}

// warnPlainAPI warns when --listen or --http-addr is beyond loopback
// without --api-cert: the API then serves bearer tokens and private keys
// over plain HTTP, readable by anyone on the path. It is a warning, not a
// refusal: a private network may be trusted (docs/server.md says clients
// on other hosts need --api-cert). With --api-cert, --http-addr answers
// http-01 alone.
func (c *serverConfig) warnPlainAPI(env *Env) {
	for _, l := range []struct{ flag, addr string }{{"--listen", c.Listen}, {"--http-addr", c.HTTPAddr}} {
		if c.APICert == "" && l.addr != "" && !monitor.Loopback(l.addr) {
			fmt.Fprintf(env.Stderr, "certkeeper: warning: %s %s serves the API over plain HTTP beyond loopback: "+
				"bearer tokens and private keys cross the network in clear; give --api-cert CERT:KEY to serve it over HTTPS\n", l.flag, l.addr)
		}
	}
}

// apiTLSConfig reads the TLS files of --listen: --api-cert (and
// --client-ca), or nil for plain HTTP.
func apiTLSConfig(cfg *serverConfig) (*certserver.TLSFiles, error) {
	if cfg.APICert == "" {
		if cfg.ClientCA != "" {
			return nil, usagef("--client-ca needs --api-cert: client certificates need HTTPS")
		}
		return nil, nil
	}
	cf, err := certkeeper.ParseCertFile(cfg.APICert)
	if err != nil {
		return nil, usagef("--api-cert: %v", err)
	}
	files, err := certserver.LoadTLSFiles(cf.Cert, cf.Key, cfg.ClientCA)
	if ferr, ok := errors.AsType[*certserver.FileError](err); ok && ferr.What == "client CA" {
		return nil, fmt.Errorf("--client-ca %s: %w", ferr.File, ferr.Err)
	} else if ok {
		return nil, fmt.Errorf("--api-cert: %w", ferr.Err)
	}
	return files, err
}

// openAudit makes the audit log h's: JSON lines appended to file
// (certserver.OpenAuditFile: 0600, its directory made 0700 if missing), or
// text on stderr; always at Info, whatever --log-level says. A file starts
// with an "audit log opened" line, written before the server listens: a
// file that cannot be written shows at once, on stderr, and in
// h.AuditErr, which the Handler asks before each hand-out.
func openAudit(h *certserver.Handler, file string, failOpen bool, env *Env) (closeAudit func(), err error) {
	if file == "" {
		_, jsonLog := env.Stderr.(*logsetup.Lines)
		h.Audit = certserver.StderrAudit(env.stderr, jsonLog) // JSON: records of their own, not text inside one
		return func() {}, nil
	}
	af, err := certserver.OpenAuditFile(file, env.Logger.With(slog.String("file", file)), slog.Int("pid", os.Getpid()), slog.String("version", versionString()))
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	if err := af.Sync(); err != nil {
		what := "keys get 503 until it can be written (or give --audit-fail-open to hand them out unrecorded)"
		if failOpen {
			what = "--audit-fail-open: keys are handed out unrecorded until it can be written"
		}
		fmt.Fprintf(env.Stderr, "certkeeper: cannot write the audit log %s: %v; %s\n", file, err, what)
	}
	return af.Attach(h, failOpen), nil
}
