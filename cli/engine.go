package cli

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/dns01"
	"github.com/certkeeper/certkeeper/storage"
)

// engineConfig is the configuration every long-running front-end (proxy,
// server) shares: which names, which CAs, where state lives. Every flag
// has a key of the same name (with "_" for "-") in the --config YAML file;
// docs/config.md documents each.
type engineConfig struct {
	Allow []string `yaml:"allow"`
	Ask   string   `yaml:"ask"`
	// caFlags are ca, email, key_type, profile, eab_kid, eab_hmac and
	// ca_roots (caflags.go).
	caFlags     `yaml:",inline"`
	Challenge   []string `yaml:"challenge"`
	Storage     string   `yaml:"storage"`
	StorageKey  string   `yaml:"storage_key_file"`
	StoragePass string   `yaml:"storage_password_file"`
	OrderLimit  string   `yaml:"order_limit"`
	RSAFallback bool     `yaml:"rsa_fallback"`
	RequireOwn  bool     `yaml:"require_own_ip"`
	// OwnIPPrivate lets loopback, link-local and private addresses count
	// as this host's own for RequireOwn.
	OwnIPPrivate bool     `yaml:"own_ip_private"`
	Wildcards    []string `yaml:"wildcard"`
	CertFiles    []string `yaml:"cert_file"`
	// CertFileCheck is how often --cert-file files are checked for
	// changes.
	CertFileCheck time.Duration `yaml:"cert_file_check_every" alias:"cert_file_check"`
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
	fs.Var((*stringsFlag)(&c.Allow), "allow", "a name `PATTERN` that may get a certificate: a.example, *.a.example (any subdomain),\nor re:REGEXP; repeatable")
	fs.StringVar(&c.Ask, "ask", "", "ask this `URL` (GET URL?domain=NAME, 200 = yes) before obtaining a certificate")
	c.caFlags.register(fs, caChain|caEmail|caEAB|caOrder)
	fs.Var((*stringsFlag)(&c.Challenge), "challenge", challengeHelp)
	fs.StringVar(&c.Storage, "storage", "", storageUsage)
	fs.StringVar(&c.StorageKey, "storage-key-file", "", storageKeyUsage)
	fs.StringVar(&c.StoragePass, "storage-password-file", "", storagePasswordUsage)
	fs.StringVar(&c.OrderLimit, "order-limit", "", "`N/DURATION`: at most N new orders per DURATION per CA account, counted in --storage\nfor every node sharing it (e.g. 10/1m; default: only the CA's own limits)")
	fs.BoolVar(&c.RSAFallback, "rsa-fallback", false, "also obtain RSA certificates, for clients that cannot use ECDSA")
	fs.BoolVar(&c.RequireOwn, "require-own-ip", false, "obtain certificates only for names that resolve to this host's own public addresses")
	fs.BoolVar(&c.OwnIPPrivate, "own-ip-private", false, "with --require-own-ip, count loopback, link-local and private addresses as this host's\nown too (for an internal CA; a public CA cannot reach them, so by default they are refused)")
	c.CertFileCheck = 5 * time.Second
	fs.Var((*durationFlag)(&c.CertFileCheck), "cert-file-check-every", "check --cert-file files for changes every `DURATION`")
	deprecatedFlag(fs, "cert-file-check", "cert-file-check-every") // as --alert-check-every
	fs.Var((*stringsFlag)(&c.Wildcards), "wildcard", "serve every subdomain of a zone from one wildcard certificate: `*.ZONE` (obtained with\nZONE at the first handshake for any name in it; needs --dns); repeatable")
	fs.Var((*stringsFlag)(&c.CertFiles), "cert-file", "`CERT:KEY`: serve this certificate (PEM chain and key files made elsewhere) for the\nnames it covers, reloaded when the files change; repeatable")
	c.DNS.register(fs)
	c.Deploy.register(fs, "deploy-")
	c.Ops.register(fs)
}

// globals records the global flags' values (main.go's globalFlags) in
// c, for overlay.
func (c *engineConfig) globals(fs *flag.FlagSet) {
	c.LogFormat = fs.Lookup("log-format").Value.String()
	c.LogLevel = fs.Lookup("log-level").Value.String()
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

// setIf sets *dst to v when the flag name was given on the command line.
func setIf[T any](set map[string]bool, name string, dst *T, v T) {
	if set[name] {
		*dst = v
	}
}

// overlay lays the flags that were set on top of c (read from the config
// file).
func (c *engineConfig) overlay(flags *engineConfig, set map[string]bool) {
	setIf(set, "allow", &c.Allow, flags.Allow)
	setIf(set, "ask", &c.Ask, flags.Ask)
	setIf(set, "ca", &c.CA, flags.CA)
	setIf(set, "email", &c.Email, flags.Email)
	setIf(set, "challenge", &c.Challenge, flags.Challenge)
	setIf(set, "storage", &c.Storage, flags.Storage)
	setIf(set, "storage-key-file", &c.StorageKey, flags.StorageKey)
	setIf(set, "storage-password-file", &c.StoragePass, flags.StoragePass)
	setIf(set, "order-limit", &c.OrderLimit, flags.OrderLimit)
	setIf(set, "wildcard", &c.Wildcards, flags.Wildcards)
	setIf(set, "key-type", &c.KeyType, flags.KeyType)
	setIf(set, "profile", &c.Profile, flags.Profile)
	setIf(set, "eab-kid", &c.EABKID, flags.EABKID)
	setIf(set, "eab-hmac", &c.EABHMAC, flags.EABHMAC)
	setIf(set, "ca-roots", &c.CARoots, flags.CARoots)
	setIf(set, "cert-file", &c.CertFiles, flags.CertFiles)
	setIf(set, "cert-file-check-every", &c.CertFileCheck, flags.CertFileCheck)
	setIf(set, "rsa-fallback", &c.RSAFallback, flags.RSAFallback)
	setIf(set, "require-own-ip", &c.RequireOwn, flags.RequireOwn)
	setIf(set, "own-ip-private", &c.OwnIPPrivate, flags.OwnIPPrivate)
	// The global flags have defaults: they apply when the file has no value.
	if set["log-format"] || c.LogFormat == "" {
		c.LogFormat = flags.LogFormat
	}
	// A long-running command logs at info unless told otherwise: issuance,
	// renewals, reloads and refused names are what its operator watches
	// for (docs/cli.md).
	switch {
	case set["log-level"]:
		c.LogLevel = flags.LogLevel
	case c.LogLevel == "":
		c.LogLevel = serviceLogLevel
	}
	c.DNS.overlay(&flags.DNS, set)
	c.Deploy.overlay(set, "deploy-", flags.Deploy)
	c.Ops.overlay(&flags.Ops, set)
}

// policy builds the on-demand policy from --allow, --require-own-ip and
// --ask (all must agree); nil when none is given.
func (c *engineConfig) policy() (policy.Policy, error) {
	var checks []policy.Policy
	if len(c.Allow) > 0 {
		p, err := policy.ParseAllowlist(c.Allow...)
		if err != nil {
			return nil, usagef("--allow: %v", err)
		}
		checks = append(checks, p)
	}
	if c.OwnIPPrivate && !c.RequireOwn {
		return nil, usagef("--own-ip-private (own_ip_private) only applies with --require-own-ip (require_own_ip): add it, or drop --own-ip-private")
	}
	if c.RequireOwn {
		checks = append(checks, &policy.RequireOwnIP{AllowPrivate: c.OwnIPPrivate})
	}
	if c.Ask != "" {
		checks = append(checks, &policy.AskURL{URL: c.Ask})
	}
	switch len(checks) {
	case 0:
		return nil, nil
	case 1:
		return checks[0], nil
	}
	return policy.All(checks...), nil
}

// frontEnd says what a front-end offers the engine: whether http-01 and
// tls-alpn-01 can be answered (and the flags that enable them, for the
// error), and the User-Agent suffix of its ACME requests.
type frontEnd struct {
	http01, alpn       bool
	http01Via, alpnVia string
	userAgent          string
}

// manager builds the Manager of c, without its Policy (the caller sets it,
// so that a reload can swap it).
func (c *engineConfig) manager(st storage.Storage, env *Env, fe frontEnd) (*certkeeper.Manager, error) {
	keyType, err := issuer.ParseKeyType(c.KeyType)
	if err != nil {
		return nil, usagef("--key-type: %v", err)
	}
	orderLimit, orderWindow, err := parseOrderLimit(c.OrderLimit)
	if err != nil {
		return nil, usagef("--order-limit: %v", err)
	}
	issuers, err := c.issuers(st, env, fe)
	if err != nil {
		return nil, err
	}
	var rules []certkeeper.NameRule
	for i, n := range c.Names {
		if _, err := policy.ParseAllowlist(n.Pattern); err != nil || n.Pattern == "" {
			return nil, usagef("--config: names[%d]: pattern %q: %v", i, n.Pattern, err)
		}
		sub := *c
		if len(n.CA) > 0 {
			sub.CA = n.CA
		}
		if len(n.Challenge) > 0 {
			sub.Challenge = n.Challenge
		}
		if n.Profile != "" {
			sub.Profile = n.Profile
		}
		ruleIssuers, err := sub.issuers(st, env, fe)
		if err != nil {
			return nil, fmt.Errorf("--config: names[%d] (%s): %w", i, n.Pattern, err)
		}
		kt, err := issuer.ParseKeyType(n.KeyType)
		if err != nil {
			return nil, usagef("--config: names[%d] (%s): %v", i, n.Pattern, err)
		}
		if n.KeyType == "" {
			kt = ""
		}
		rules = append(rules, certkeeper.NameRule{Pattern: n.Pattern, Issuers: ruleIssuers, KeyType: kt})
	}
	var files []certkeeper.CertFile
	for _, s := range c.CertFiles {
		cf, err := certkeeper.ParseCertFile(s)
		if err != nil {
			return nil, usagef("--cert-file: %v", err)
		}
		files = append(files, cf)
	}
	m := &certkeeper.Manager{
		Issuers:       issuers,
		Rules:         rules,
		Wildcards:     c.Wildcards,
		RSAFallback:   c.RSAFallback,
		Storage:       st,
		Email:         c.Email,
		KeyType:       keyType,
		CertFiles:     files,
		CertFileCheck: c.CertFileCheck,
		Logger:        env.Logger,
		Cluster:       certkeeper.Cluster{OrderLimit: orderLimit, OrderWindow: orderWindow},
	}
	withManagerSolvers(m, issuers)
	for _, r := range rules {
		withManagerSolvers(m, r.Issuers)
	}
	return m, nil
}

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

// issuers builds the fallback chain from --ca.
func (c *engineConfig) issuers(st storage.Storage, env *Env, fe frontEnd) ([]issuer.Issuer, error) {
	cas := c.CA
	if len(cas) == 0 {
		cas = []string{"letsencrypt"}
	}
	order := c.Challenge
	if len(order) == 0 {
		if fe.alpn {
			order = append(order, acmeca.TLSALPN01)
		}
		if fe.http01 {
			order = append(order, acmeca.HTTP01)
		}
		if c.DNS.Provider != "" {
			order = append(order, acmeca.DNS01)
		}
	}
	dnsSolvers, err := c.dnsSolvers(order, env, fe)
	if err != nil {
		return nil, err
	}
	if dnsSolvers != nil {
		order = append([]string{acmeca.DNSPersist01}, order...)
	}
	var out []issuer.Issuer
	for _, ca := range cas {
		if err := checkCA(ca); err != nil {
			return nil, usagef("--ca: %v", err)
		}
		iss, err := c.issuerFor(env, ca, st)
		if err != nil {
			return nil, err
		}
		if a, ok := iss.(*acmeca.Issuer); ok {
			a.ChallengeOrder, a.UserAgent, a.Solvers = order, fe.userAgent, maps.Clone(dnsSolvers)
		}
		out = append(out, iss)
	}
	return out, nil
}

// warnNoPolicy warns when no name can get a new certificate.
func (c *engineConfig) warnNoPolicy(env *Env) {
	if len(c.Allow) == 0 && c.Ask == "" && !c.RequireOwn {
		fmt.Fprintln(env.Stderr, "certkeeper: warning: no --allow or --ask: no new certificate will be obtained, only stored ones served")
	}
}

// dnsSolvers checks the challenge list against what the front-end can
// answer and builds the DNS solvers it asks for (nil when it names none):
// dns-01 through --dns, and dns-persist-01 wherever its record is in
// place. The Manager adds its own tls-alpn-01 and http-01 solvers
// (withManagerSolvers).
func (c *engineConfig) dnsSolvers(order []string, env *Env, fe frontEnd) (map[string]solver.Solver, error) {
	var solvers map[string]solver.Solver
	for _, ch := range order {
		switch ch {
		case acmeca.TLSALPN01:
			if !fe.alpn {
				return nil, usagef("--challenge tls-alpn-01 needs %s", fe.alpnVia)
			}
		case acmeca.HTTP01:
			if !fe.http01 {
				return nil, usagef("--challenge http-01 needs %s", fe.http01Via)
			}
		case acmeca.DNS01:
			s, err := c.DNS.solver(env)
			if err != nil {
				return nil, err
			}
			s.Logger = env.Logger
			if solvers == nil {
				solvers = map[string]solver.Solver{}
			}
			solvers[acmeca.DNS01] = s
			solvers[acmeca.DNSPersist01] = &dns01.Persist{Resolver: c.DNS.resolver()}
		case acmeca.DNSPersist01:
			if solvers == nil {
				solvers = map[string]solver.Solver{}
			}
			solvers[acmeca.DNSPersist01] = &dns01.Persist{Resolver: c.DNS.resolver()}
		default:
			return nil, usagef("--challenge %q: use tls-alpn-01, http-01, dns-01 or dns-persist-01", ch)
		}
	}
	if len(c.Wildcards) > 0 && solvers[acmeca.DNS01] == nil {
		return nil, usagef("--wildcard %s: wildcard certificates are validated only through DNS: dns-01 is needed (--dns rfc2136, powerdns or exec)", c.Wildcards[0])
	}
	for _, w := range c.Wildcards {
		if n, err := (hostname.Normalizer{AllowWildcard: true}).Normalize(w); err != nil || !strings.HasPrefix(n, "*.") {
			return nil, usagef("--wildcard %q: want *.ZONE, e.g. *.a.example", w)
		}
	}
	return solvers, nil
}

// withManagerSolvers gives ACME issuers that have DNS solvers the
// Manager's tls-alpn-01 and http-01 solvers too (an issuer with no
// solvers gets them from the Manager by itself).
func withManagerSolvers(m *certkeeper.Manager, issuers []issuer.Issuer) {
	for _, iss := range issuers {
		if a, ok := iss.(*acmeca.Issuer); ok && a.Solvers != nil {
			for typ, s := range m.Solvers() {
				if a.Solvers[typ] == nil {
					a.Solvers[typ] = s
				}
			}
		}
	}
}

// parseOrderLimit parses --order-limit N/DURATION ("10/1m"); empty means
// no shared limit.
func parseOrderLimit(v string) (int, time.Duration, error) {
	if v == "" {
		return 0, 0, nil
	}
	ns, ds, ok := strings.Cut(v, "/")
	n, err := strconv.Atoi(ns)
	if !ok || err != nil || n <= 0 {
		return 0, 0, fmt.Errorf("%q: want N/DURATION, e.g. 10/1m or 300/3h", v)
	}
	d, err := time.ParseDuration(ds)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("%q: want N/DURATION, e.g. 10/1m or 300/3h", v)
	}
	return n, d, nil
}

// services starts what runs beside any front-end's Manager: metrics, the
// status page and alerts (ops), and deploying certificates to other
// servers. listen opens the ops listeners (nil: net.Listen). Call it after the Manager is built and before it serves: it
// sets the Manager's OnEvent and wraps its Storage. stop ends them.
func (c *engineConfig) services(ctx context.Context, env *Env, m *certkeeper.Manager, listen func(name, addr string) (net.Listener, error)) (stop func(), err error) {
	st := m.Storage
	o := newOps(c.Ops, env)
	o.listen = listen
	m.Storage = o.storage(st)
	m.OnEvent = o.observe
	stopDeploy, err := startDeploy(ctx, env, c.Deploy, m, st)
	if err != nil {
		return nil, err
	}
	if err := o.start(m, st); err != nil {
		stopDeploy()
		return nil, err
	}
	return func() { o.stop(); stopDeploy() }, nil
}
