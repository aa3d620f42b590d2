package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/engine"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/logsetup"
	"github.com/certkeeper/certkeeper/internal/proxyprotocol"
	"github.com/certkeeper/certkeeper/internal/serveloop"
	"github.com/certkeeper/certkeeper/internal/upgrade"
	"github.com/certkeeper/certkeeper/internal/yamlconf"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/monitor"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/proxy"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/storage"
)

// engineConfig is the configuration every long-running front-end (proxy,
// server) shares: which names, which CAs, where state lives. Every flag
// has a key of the same name (with "_" for "-") in the --config YAML file;
// docs/config.md documents each.
type engineConfig struct {
	Allow []string `yaml:"allow" arg:"PATTERN" help:"a name PATTERN that may get a certificate: a.example, *.a.example (any subdomain),\nor re:REGEXP; repeatable"`
	Ask   string   `yaml:"ask" arg:"URL" help:"ask this URL (GET URL?domain=NAME, 200 = yes) before obtaining a certificate"`
	// caFlags are ca, email, key_type, profile, eab_kid, eab_hmac and
	// ca_roots (caflags.go).
	caFlags   `yaml:",inline"`
	Challenge []string `yaml:"challenge"`
	// storageFlags are storage, storage_key_file and
	// storage_password_file (storageopen.go).
	storageFlags `yaml:",inline"`
	ClientLimit  string `yaml:"client_limit" arg:"N/DURATION" help:"N/DURATION: at most N new names per DURATION start an issuance from one client address\n(e.g. 1000/1h for a load test or a load balancer without PROXY protocol; default 60, then one every 3m;\nserver: from one web server, and only when given)"`
	OrderLimit   string `yaml:"order_limit" arg:"N/DURATION" help:"N/DURATION: at most N new orders per DURATION per CA account, counted in --storage\nfor every node sharing it (e.g. 10/1m; default: only the CA's own limits)"`
	MaxConns     int    `yaml:"max_conns" arg:"N" default:"10000" help:"N connections each listener keeps open at once at most; one more is closed at once"`
	MaxPerClient int    `yaml:"max_conns_per_client" arg:"N" default:"1000" help:"N of them at most from one client address (an IPv6 /64); raise it behind a load balancer\nthat hides client addresses"`
	CacheSize    int    `yaml:"cache_size" arg:"N" default:"10000" help:"hold at most N certificates in memory (a few KB each), served without storage; more are\nloaded from --storage at their handshake, and renewed all the same"`
	RSAFallback  bool   `yaml:"rsa_fallback" help:"also obtain RSA certificates, for clients that cannot use ECDSA"`
	RequireOwn   bool   `yaml:"require_own_ip" help:"obtain certificates only for names that resolve to this host's own public addresses"`
	// OwnIPPrivate lets loopback, link-local and private addresses count
	// as this host's own for RequireOwn.
	OwnIPPrivate bool     `yaml:"own_ip_private" help:"with --require-own-ip, count loopback, link-local and private addresses as this host's\nown too (for an internal CA; a public CA cannot reach them, so by default they are refused)"`
	Wildcards    []string `yaml:"wildcard" arg:"*.ZONE" help:"serve every subdomain of a zone from one wildcard certificate: *.ZONE (obtained with\nZONE at the first handshake for any name in it that --allow allows; needs --dns, or\n--challenge dns-persist-01 with its record set); repeatable"`
	ProxyFrom    []string `yaml:"proxy_protocol_from" arg:"CIDR" help:"CIDR (or address) of TCP load balancers that start each connection with a PROXY protocol\nheader (v1 or v2), which must: the client address in it is used; repeatable"`
	proxyFrom    []netip.Prefix
	// routed are the proxy's --route patterns, which the policy allows
	// whatever the other checks say.
	routed []string
	// keyDigests are the DNS key files' contents at start (keyDigests),
	// which a reload compares.
	keyDigests map[string][32]byte
	CertFiles  []string `yaml:"cert_file" arg:"CERT:KEY" help:"CERT:KEY: serve this certificate (PEM chain and key files made elsewhere) for the\nnames it covers, reloaded when the files change; repeatable"`
	// CertFileCheck is how often --cert-file files are checked for
	// changes (its old name went as --alert-check's did).
	CertFileCheck time.Duration `yaml:"cert_file_check_every" alias:"cert_file_check" arg:"DURATION" default:"5s" deprecated:"cert-file-check" help:"check --cert-file files for changes every DURATION"`
	// Names gives names matching a pattern their own CA chain, key type,
	// challenges or profile (config file only).
	Names []nameConfig `yaml:"names"`
	// DNS is how dns-01 records are set (dns, dns_server, tsig_key, ...).
	DNS dnsConfig `yaml:",inline"`
	// Deploy writes the certificates for other servers on every issuance
	// and renewal (deploy.go).
	Deploy deployFlags `yaml:",inline"`
	// Ops are the metrics, status page and alert settings (ops.go).
	Ops opsConfig `yaml:",inline"`
	// LogFormat and LogLevel are the global --log-format and --log-level
	// (main.go), read from the file too; applyLogging sets them up.
	LogFormat string `yaml:"log_format"`
	LogLevel  string `yaml:"log_level"`

	// notes are the deprecation notes of the config file's old keys,
	// printed by printNotes.
	notes []string
	// credit says where each setting came from (source.credit), for
	// the start-up summary; nil credits the flags.
	credit func(flag string) string
}

func (c *engineConfig) addNote(note string) { c.notes = append(c.notes, note) }

// printNotes writes the config file's deprecation notes to stderr, once.
func (c *engineConfig) printNotes(env *Env) {
	for _, note := range c.notes {
		fmt.Fprintf(env.Stderr, "certkeeper: %s\n", note)
	}
	c.notes = nil
}

// nameConfig is one entry of the config's "names" list.
type nameConfig struct {
	Pattern   string   `yaml:"pattern"`
	CA        []string `yaml:"ca"`
	KeyType   string   `yaml:"key_type"`
	Challenge []string `yaml:"challenge"`
	Profile   string   `yaml:"profile"`
}

// register sets up the shared flags; challengeHelp describes --challenge
// for the front-end.
func (c *engineConfig) register(fs *flag.FlagSet, challengeHelp string) {
	c.caFlags.register(fs, caChain|caEmail|caEAB|caOrder)
	fs.Var((*cmdline.Strings)(&c.Challenge), "challenge", challengeHelp)
	c.Deploy.register(fs, "deploy-")
}

// applyLogging sets env's logging up again when the config file's
// log_format or log_level differ from what the flags set up.
func (c *engineConfig) applyLogging(env *Env, flags *engineConfig) error {
	c.printNotes(env)
	if c.LogFormat == flags.LogFormat && c.LogLevel == flags.LogLevel {
		return nil
	}
	return env.setLogging(c.LogFormat, c.LogLevel)
}

// serviceLogLevel is the --log-level of the long-running commands (proxy,
// server) when neither the flag nor the config file gives one; the other
// commands keep the global default, warn.
const serviceLogLevel = "info"

// overlay lays the flags that were set over cfg, read from the config
// file (yamlconf.Overlay); cfg and flags are an *engineConfig or a
// front-end's config that inlines one, and withDefault names the
// front-end's flags whose defaults apply when the file has no value.
func overlay[T any](cfg, flags *T, engine *engineConfig, set map[string]bool, withDefault ...string) {
	// The global --log-format and the alert durations have defaults too.
	withDefault = append(withDefault, "log-format", "alert-failing-for", "alert-expiring-within", "alert-check-every")
	yamlconf.Overlay(cfg, flags, set, withDefault...)
	// A long-running command logs at info unless told otherwise: issuance,
	// renewals, reloads and refused names are what its operator watches
	// for (docs/cli.md).
	if !set["log-level"] && engine.LogLevel == "" {
		engine.LogLevel = serviceLogLevel
	}
}

// policy builds the on-demand policy from --allow, --require-own-ip and
// --ask (all must agree); nil when none is given.
func (c *engineConfig) policy() (policy.Policy, error) {
	p, err := policy.Config{Allow: c.Allow, RequireOwnIP: c.RequireOwn, OwnIPPrivate: c.OwnIPPrivate, Ask: c.Ask, Routed: c.routed}.Policy()
	switch {
	case errors.Is(err, policy.ErrPrivateWithoutOwnIP):
		return nil, usagef("--own-ip-private (own_ip_private) only applies with --require-own-ip (require_own_ip): add it, or drop --own-ip-private")
	case errors.Is(err, policy.ErrInvalidAskURL):
		return nil, usagef("--ask: %v (e.g. --ask http://127.0.0.1:9000/allowed)", err)
	case len(policy.PatternErrors(err)) > 0: // one line per bad pattern
		var errs []error
		for _, pe := range policy.PatternErrors(err) {
			errs = append(errs, usagef("--allow %q: %s", pe.Pattern, pe.Reason()))
		}
		return nil, errors.Join(errs...)
	case err != nil:
		return nil, usagef("--allow: %v", err)
	}
	return p, nil
}

// frontEnd says what a front-end offers the engine: whether http-01 and
// tls-alpn-01 can be answered (and the flags that enable them, for the
// error), and the User-Agent suffix of its ACME requests.
type frontEnd struct {
	http01, alpn       bool
	http01Via, alpnVia string
	userAgent          string
	managed            []string // the server's --managed, whose DNS access is checked at start
}

// manager builds the Manager of c (engine.Settings.Manager), without its
// Policy (the caller sets it, so that a reload can swap it).
func (c *engineConfig) manager(st storage.Storage, env *Env, fe frontEnd) (*certkeeper.Manager, error) {
	s, err := c.settings(env, fe)
	if err != nil {
		return nil, err
	}
	m, err := s.Manager(st)
	if err != nil {
		return nil, settingError(err, fe, c.DNS.Provider != "")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // a DNS server down delays the start by this at most
	defer cancel()
	logger := slog.New(logsetup.MapErrors(env.Logger.Handler(), withFlagHints))
	if err := errors.Join(s.CheckDNS(ctx, logger, fe.managed...), engine.CheckProfiles(ctx, m, logger)); err != nil {
		return nil, settingError(err, fe, c.DNS.Provider != "")
	}
	return m, nil
}

// settings are c's engine.Settings, each value that has a flag's syntax
// checked with the flag named; the error joins every mistake found, for
// --check-config to list them at once.
func (c *engineConfig) settings(env *Env, fe frontEnd) (*engine.Settings, error) {
	var errs []error
	keyType, err := issuer.ParseKeyType(c.KeyType)
	if err != nil {
		errs = append(errs, usagef("--key-type: %v", err))
	} else if c.KeyType != "" && !strings.EqualFold(c.KeyType, string(keyType)) { // another tool's name, as cert issue says
		fmt.Fprintf(env.Stderr, "certkeeper: --key-type %s is %s\n", c.KeyType, keyType)
	}
	orderLimit, orderWindow, err := engine.ParseOrderLimit(c.OrderLimit)
	if err != nil {
		errs = append(errs, usagef("--order-limit: %v", err))
	}
	clientLimit, clientWindow, err := engine.ParseOrderLimit(c.ClientLimit)
	if err != nil {
		errs = append(errs, usagef("--client-limit: %v", err))
	}
	if n, flag := min(c.MaxConns, c.MaxPerClient, c.CacheSize), "--max-conns"; n < 0 {
		if c.MaxPerClient < 0 {
			flag += "-per-client"
		} else if c.CacheSize < 0 {
			flag = "--cache-size"
		}
		errs = append(errs, usagef("%s %d: must be at least 1 (0 keeps the default; raise a limit rather than remove it)", flag, n))
	}
	s := &engine.Settings{ClientLimit: clientLimit, ClientWindow: clientWindow, CAs: c.CA, KeyType: keyType, Challenges: c.Challenge, TLSALPN01: fe.alpn, HTTP01: fe.http01,
		DNSResolver: c.DNS.resolver(), Wildcards: c.Wildcards, RSAFallback: c.RSAFallback, CertFileCheck: c.CertFileCheck,
		OrderLimit: orderLimit, OrderWindow: orderWindow, UserAgent: fe.userAgent, CacheSize: c.CacheSize}
	if s.DNS01, err = c.dnsSolver(env); err != nil {
		errs = append(errs, err)
	} else if err := c.DNS.checkWithoutProvider(); err != nil {
		errs = append(errs, err)
	}
	if s.Account, err = c.account(env); err != nil {
		errs = append(errs, err)
	}
	for i, n := range c.Names {
		if _, err := policy.ParseAllowlist(n.Pattern); err != nil || n.Pattern == "" {
			errs = append(errs, usagef("--config: names[%d]: pattern %q: %v", i, n.Pattern, err))
		}
		kt, err := issuer.ParseKeyType(n.KeyType)
		if err != nil {
			errs = append(errs, usagef("--config: names[%d] (%s): %v", i, n.Pattern, err))
		}
		if n.KeyType == "" {
			kt = ""
		}
		s.Rules = append(s.Rules, engine.Rule{Pattern: n.Pattern, CAs: n.CA, Challenges: n.Challenge, Profile: n.Profile, KeyType: kt})
	}
	for _, f := range c.CertFiles {
		cf, err := certkeeper.ParseCertFile(f)
		if err == nil { // read now: the Manager reads them at its first use, and an unreadable pair would fail every handshake
			_, err = certkeeper.ReadCertFile(cf, time.Now())
		}
		if err != nil {
			errs = append(errs, usagef("--cert-file %s: %v", f, err))
		}
		s.CertFiles = append(s.CertFiles, cf)
	}
	return s, errors.Join(errs...)
}

// dnsSolver is the dns-01 solver (--dns), if c's challenges or those of
// a names entry use dns-01 (by default, with --dns given); else nil.
func (c *engineConfig) dnsSolver(env *Env) (*dns01.Solver, error) {
	uses := func(challenges []string) bool { return engine.UsesDNS01(challenges, c.DNS.Provider != "") }
	if uses(c.Challenge) {
		return c.DNS.solver(env)
	}
	for i, n := range c.Names {
		if len(n.Challenge) > 0 && uses(n.Challenge) {
			s, err := c.DNS.solver(env)
			if err != nil {
				return nil, fmt.Errorf("--config: names[%d] (%s): %w", i, n.Pattern, err)
			}
			return s, nil
		}
	}
	return nil, nil
}

// account is the ACME account of c's CAs; the --eab-kid and --ca-roots
// flags are checked only if a chain has a CA other than local.
func (c *engineConfig) account(env *Env) (engine.Account, error) {
	chains := [][]string{c.CA}
	for _, n := range c.Names {
		chains = append(chains, n.CA)
	}
	for _, cas := range chains {
		if len(cas) == 0 || slices.ContainsFunc(cas, func(ca string) bool { return !engine.IsLocal(ca) }) {
			return c.caFlags.account(env)
		}
	}
	return engine.Account{Email: c.Email, Logger: env.Logger}, c.caFlags.forLocal()
}

// settingError names the flags in an engine.SettingError; dns tells
// whether --dns is given.
func settingError(err error, fe frontEnd, dns bool) error {
	se, ok := errors.AsType[*engine.SettingError](err)
	if !ok {
		return err
	}
	switch {
	case errors.Is(se.Err, engine.ErrNotAnswered) && se.Value == acmeca.TLSALPN01:
		err = usagef("--challenge tls-alpn-01 needs %s", fe.alpnVia)
	case errors.Is(se.Err, engine.ErrNotAnswered) && se.Value == acmeca.HTTP01:
		err = usagef("--challenge http-01 needs %s", fe.http01Via)
	case errors.Is(se.Err, engine.ErrUnknownChallenge):
		err = usagef("--challenge %q: use tls-alpn-01, http-01, dns-01 or dns-persist-01", se.Value)
	case errors.Is(se.Err, engine.ErrWildcardNeedsDNS01) && dns:
		err = usagef("--wildcard %s: wildcard certificates are validated only through DNS: add dns-01 (or dns-persist-01) to --challenge", se.Value)
	case errors.Is(se.Err, engine.ErrWildcardNeedsDNS01):
		err = usagef("--wildcard %s: wildcard certificates are validated only through DNS: give --dns (dns-01: rfc2136, powerdns or exec), or --challenge dns-persist-01", se.Value)
	case errors.Is(se.Err, engine.ErrNotWildcard):
		err = usagef("--wildcard %q: want *.ZONE, e.g. *.a.example", se.Value)
	case se.Field == "Wildcards" || se.Field == "Managed": // CheckDNS: the DNS server refuses the records
		err = fmt.Errorf("--%s %s: %w", strings.ToLower(strings.TrimSuffix(se.Field, "s")), se.Value, withFlagHints(se.Err))
	case se.Field == "CAs":
		err = usagef("--ca: %v", se.Err)
	case se.Field == "Profile": // a value the CA refuses, as --challenge's: bad usage
		err = usagef("--profile: %v", se.Err)
	}
	if se.Rule >= 0 {
		return fmt.Errorf("--config: names[%d] (%s): %w", se.Rule, se.Pattern, err)
	}
	return err
}

// parseProxyFrom parses --proxy-protocol-from into c.proxyFrom.
func (c *engineConfig) parseProxyFrom() error {
	c.proxyFrom = nil
	for _, a := range c.ProxyFrom {
		p, err := proxyprotocol.ParsePrefix(a)
		if err != nil {
			return usagef("--proxy-protocol-from %q: want an address or a CIDR prefix, e.g. 10.0.0.0/8", a)
		}
		c.proxyFrom = append(c.proxyFrom, p)
	}
	return nil
}

// connLimits bound each listener's connections (--proxy-protocol-from exempt per client).
func (c *engineConfig) connLimits() connlimit.Limits {
	return connlimit.Limits{Max: c.MaxConns, PerClient: c.MaxPerClient}
}

// errAllowsNone refuses a reload to a configuration that allows no name
// on demand while the running one does: a file cut short while being
// written must not take every site down; a restart applies it.
var errAllowsNone = errors.New("the new configuration allows no name on demand (no allow, ask or require_own_ip), where the running one does: restart certkeeper to run without them")

// reloadablePolicy is the Manager's Policy: whatever current holds (nil
// refuses every name).
func reloadablePolicy(current func() policy.Policy) policy.Policy {
	return policy.Func(func(ctx context.Context, name string) error {
		p := current()
		if p == nil {
			return fmt.Errorf("%w: no --allow or --ask configured", policy.ErrDenied)
		}
		return withFlagHints(p.Decide(ctx, name))
	})
}

// logReloaded logs msg, with attrs, and what changed between the
// configurations prev (the last one read) and next among the settings
// the reload applies (applied and the policy's; yamlconf.LogAttrs), or
// that none did; then warns of each other setting in which next differs
// from running (the one started with), which takes a restart.
func logReloaded(env *Env, msg string, prev, running, next any, applied []string, attrs ...slog.Attr) {
	applied = append(applied, "allow", "ask", "require_own_ip", "own_ip_private")
	all, pending := yamlconf.Changes(prev, next), slices.DeleteFunc(yamlconf.Changed(running, next), func(k string) bool { return slices.Contains(applied, k) })
	diff := yamlconf.LogAttrs(yamlconf.Only(all, applied))
	switch {
	case len(all) == 0 && len(pending) > 0:
		msg = "configuration reloaded: nothing changed since the last reload (what changed before still takes a restart)"
	case len(all) == 0:
		msg = "configuration reloaded: nothing changed"
	case len(diff) == 0:
		msg = "configuration reloaded: nothing changed that applies without a restart"
	}
	env.Logger.LogAttrs(context.Background(), slog.LevelInfo, msg, append(attrs, diff...)...)
	for _, key := range pending {
		env.Logger.Warn(key+" changed in the config file: restart certkeeper to apply it", slog.String("key", key))
	}
}

// warnStillServed warns, at a reload, of each name taken out of allow (or
// of the proxy's routes) that the new ones refuse and whose certificate m
// holds in memory: it is still served until it expires (storage first:
// docs/decisions.md), which a proxy trial took for a site removed (its
// requests went to the default backend). Deleting the certificate and
// restarting stops it.
func warnStillServed(env *Env, m *certkeeper.Manager, prev, next *engineConfig) {
	if len(next.Allow) == 0 && (next.Ask != "" || next.RequireOwn) { // they decide: not known here
		return
	}
	allowed, _ := policy.ParseAllowlist(slices.Concat(next.Allow, next.routed)...) // checked by the reload
	for _, name := range slices.Concat(prev.Allow, prev.routed) {
		if _, held := m.Cached(name); !held || allowed.Decide(context.Background(), name) == nil {
			continue
		}
		env.Logger.Warn("a name taken out of allow or route keeps its certificate, served until it expires (not renewed): to stop serving it now, delete it and restart",
			slog.String("name", name), slog.String("delete", "certkeeper storage delete --storage "+cmdline.ShellQuote(storageWhere(next.Storage))+" "+name))
	}
}

// service is a front-end (proxy, server) as serve runs it, once its
// configuration is loaded and checked.
type service struct {
	cfg     *engineConfig
	fe      frontEnd
	summary engine.Summary
	// drain bounds how long open connections get to finish at the end.
	drain time.Duration
	// policy is the policy at each decision (a reload swaps it).
	policy func() policy.Policy
	// setup adjusts the Manager before it serves.
	setup func(*certkeeper.Manager)
	// api is the server's API, whose requests the metrics count.
	api *certserver.Handler
	// traffic is the proxy's request counts, which the metrics export.
	traffic *proxy.Traffic
	// reload reads the configuration again, on SIGHUP; an error says the
	// file's was refused, and the one before runs.
	reload func() error
	// listen starts the front-end's listeners on loop (through up) and
	// what runs beside them.
	listen func(loop *serveloop.Loop, up *upgrade.Upgrader, m *certkeeper.Manager) error
}

// serve is the one serve, drain and reload loop of proxy and server: it
// opens storage, builds the Manager and starts what runs beside it
// (metrics, the status page and alerts of package monitor, which see
// every event and time the storage; deploying certificates to other
// servers), prints the start-up summary and listens, then serves until
// ctx ends, an upgrade (SIGUSR2) hands the listeners to a new process, or
// a listener fails. Open connections get s.drain to finish; the Manager,
// its services and the storage are closed last.
func (s *service) serve(ctx context.Context, env *Env) error {
	up, err := upgrade.New(env.Logger)
	if err != nil {
		return err
	}
	if err := s.cfg.storageFlags.checkDir(s.summary.Dev); err != nil {
		return err
	}
	s.cfg.storageFlags.durable = true
	s.cfg.keyDigests = s.cfg.DNS.keyDigests() // as the provider reads them
	st, closeStorage, err := s.cfg.storageFlags.open(ctx, env)
	if err != nil {
		return err
	}
	defer closeStorage()
	m, err := s.cfg.manager(st, env, s.fe)
	if err != nil {
		return err
	}
	m.Policy, m.Logger = reloadablePolicy(s.policy), slog.New(logsetup.MapErrors(env.Logger.Handler(), withLogHints))
	m.Explain = func(err error) string { return withLogHints(err).Error() } // status and events name flags, as the log does
	mc := s.cfg.Ops.monitor(env, up.Listen, s.api)
	mc.Traffic = s.traffic
	mon := monitor.New(mc)
	m.Storage, m.OnEvent = mon.Storage(st), mon.Observe
	s.setup(m) // after Storage: a setup that starts the Manager (the server's metrics.Handler) fixes it
	if d := s.cfg.Deploy; d.Format != "" || d.Out != "" {
		dep, err := d.deployer(env, "deploy-")
		if err != nil {
			return err
		}
		defer mon.Follow(ctx, dep, m, st)() // deploys now, after each issuance and renewal; failures in the metrics
	}
	if err := opsFlagError(mon.Start(m, st)); err != nil {
		return err
	}
	defer mon.Close()
	defer m.Close()
	if err := m.Start(); err != nil { // renewals (and revoked certificates) need no handshake first
		return err
	}
	s.summary.Rebind(up.Where) // after an upgrade, the sockets inherited
	printStartup(env, s.summary)
	loop := serveloop.New(env.Logger, env.Stderr, up, func() {
		err := s.reload()
		if err != nil {
			env.Logger.Error("reloading configuration failed; keeping the old one", slog.Any("err", err))
		}
		mon.NoteReload(err) // the metrics and the status page say it: a SIGHUP cannot fail
	})
	loop.Limits, loop.ProxyProtocolFrom = s.cfg.connLimits(), s.cfg.proxyFrom
	loop.Limits.Refusals = mon.Refusals() // the metrics count what every listener refuses
	if err := s.listen(loop, up, m); err != nil {
		loop.Abort()
		return err
	}
	failed, err := loop.Wait(ctx)
	derr := loop.Drain(s.drain, func() { m.Close() }) // at the limit: in-flight issuances end, their locks released
	switch {
	case failed && errors.Is(err, http.ErrServerClosed):
		return nil
	case failed:
		return err
	}
	return derr
}
