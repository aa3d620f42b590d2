package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/upgrade"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/proxy"
	"github.com/certkeeper/certkeeper/storage/filestore"
	"github.com/mholt/acmez/v3/acme"
	"gopkg.in/yaml.v3"
)

// proxyConfig is the proxy's configuration: every flag has a key of the
// same name (with "_" for "-") in the --config YAML file; docs/config.md
// documents each.
type proxyConfig struct {
	TLSAddr     string   `yaml:"tls_addr"`
	HTTPAddr    string   `yaml:"http_addr"`
	Backend     string   `yaml:"backend"`
	Routes      []string `yaml:"route"`
	Allow       []string `yaml:"allow"`
	Ask         string   `yaml:"ask"`
	DefaultName string   `yaml:"default_name"`
	CA          []string `yaml:"ca"`
	Email       string   `yaml:"email"`
	Challenge   []string `yaml:"challenge"`
	Storage     string   `yaml:"storage"`
	KeyType     string   `yaml:"key_type"`
	Profile     string   `yaml:"profile"`
	EABKID      string   `yaml:"eab_kid"`
	EABHMAC     string   `yaml:"eab_hmac"`
	CARoots     string   `yaml:"ca_roots"`
	RSAFallback bool     `yaml:"rsa_fallback"`
	RequireOwn  bool     `yaml:"require_own_ip"`
	// Names gives names matching a pattern their own CA chain, key type,
	// challenges or profile (config file only).
	Names []nameConfig `yaml:"names"`
	// Ops are the metrics, status page and alert settings (ops.go).
	Ops opsConfig `yaml:",inline"`
}

// nameConfig is one entry of the config's "names" list.
type nameConfig struct {
	Pattern   string   `yaml:"pattern"`
	CA        []string `yaml:"ca"`
	KeyType   string   `yaml:"key_type"`
	Challenge []string `yaml:"challenge"`
	Profile   string   `yaml:"profile"`
}

// Development-mode defaults: what "certkeeper proxy" with nothing else does.
const (
	devTLSAddr = "127.0.0.1:8443"
	devBackend = "http://127.0.0.1:8080"
	devName    = "localhost"
)

func (c *proxyConfig) register(fs *flag.FlagSet, configFile *string) {
	fs.StringVar(configFile, "config", "", "read settings from this YAML `FILE` (flags given too win); see docs/config.md")
	fs.StringVar(&c.TLSAddr, "tls-addr", "", "`ADDR` to serve HTTPS on (default :443; development mode 127.0.0.1:8443)")
	fs.StringVar(&c.HTTPAddr, "http-addr", "", "`ADDR` to answer http-01 and redirect to HTTPS on; off unless given\n(the backend usually owns :80, so the proxy uses tls-alpn-01)")
	fs.StringVar(&c.Backend, "backend", "", "`URL` of the backend for every name without a --route (default: port 80 on the\nIP address the client connected to)")
	fs.Var((*stringsFlag)(&c.Routes), "route", "`NAME=URL`: send NAME (or a pattern like *.a.example) to its own backend; repeatable")
	fs.Var((*stringsFlag)(&c.Allow), "allow", "a name `PATTERN` that may get a certificate: a.example, *.a.example (any subdomain),\nor re:REGEXP; repeatable")
	fs.StringVar(&c.Ask, "ask", "", "ask this `URL` (GET URL?domain=NAME, 200 = yes) before obtaining a certificate")
	fs.StringVar(&c.DefaultName, "default-name", "", "`NAME` whose certificate clients without SNI get")
	fs.Var((*stringsFlag)(&c.CA), "ca", "the CA: an ACME directory `URL`, letsencrypt, staging or local; repeat for a fallback\nchain, tried in order (default letsencrypt)")
	fs.StringVar(&c.Email, "email", "", "contact `EMAIL` for the ACME account")
	fs.Var((*stringsFlag)(&c.Challenge), "challenge", "challenge `TYPE` to use: tls-alpn-01, http-01 (needs --http-addr); repeatable\n(default: both, whichever the CA offers)")
	fs.StringVar(&c.Storage, "storage", "", "`DIR` for certkeeper's state (default as for cert issue)")
	fs.StringVar(&c.KeyType, "key-type", "", "certificate key `TYPE` (default ecdsa-p256)")
	fs.StringVar(&c.Profile, "profile", "", "ACME `PROFILE` to order (default: the CA's)")
	fs.StringVar(&c.EABKID, "eab-kid", "", "external account binding key `ID`")
	fs.StringVar(&c.EABHMAC, "eab-hmac", "", "external account binding `HMAC` key (base64url)")
	fs.StringVar(&c.CARoots, "ca-roots", "", "PEM `FILE` of extra roots to trust for the CA's HTTPS endpoint")
	fs.BoolVar(&c.RSAFallback, "rsa-fallback", false, "also obtain RSA certificates, for clients that cannot use ECDSA")
	fs.BoolVar(&c.RequireOwn, "require-own-ip", false, "obtain certificates only for names that resolve to this host's own addresses")
	c.Ops.register(fs)
}

func proxyCmd() *Command {
	c := &proxyConfig{}
	var configFile string
	var fs *flag.FlagSet
	return &Command{
		UsageLine: "certkeeper proxy [flags]",
		Short:     "HTTPS in front of plain-HTTP sites",
		Long: `Proxy terminates TLS with certificates it obtains at the first handshake for each name,
and forwards requests to plain-HTTP backends (Host kept; X-Forwarded-For, -Proto and -Host set;
HTTP/2 to clients; WebSockets and streaming pass through).

With no policy, CA or config it runs in development mode: it serves localhost with the local CA
on 127.0.0.1:8443 in front of http://127.0.0.1:8080 (--tls-addr, --backend and --storage change
those and keep development mode):

	certkeeper proxy

In production, say which names may get certificates; the backend gets everything:

	certkeeper proxy --allow a.example --allow '*.a.example' --backend http://127.0.0.1:8080 --email you@a.example

Per-name backends, and an ask URL that approves names (GET URL?domain=NAME answers 200):

	certkeeper proxy --ask http://127.0.0.1:9000/allowed --route b.example=http://10.0.0.2:8080

Without --backend, each request goes to port 80 on the IP address the client connected to.
SIGTERM drains connections (at most 30 s); SIGHUP reloads --config (routes, allow, ask) without
dropping connections; SIGUSR2 starts the binary now at this one's path with the listening
sockets and drains once it is ready (a new binary that fails to start leaves this one serving).
Sockets from systemd socket activation are used when given. Every flag has a config key:
docs/config.md.`,
		Flags: func(f *flag.FlagSet) {
			fs = f
			c.register(f, &configFile)
		},
		Run: func(ctx context.Context, env *Env, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected arguments %q", args)
			}
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			return runProxy(ctx, env, c, configFile, set)
		},
	}
}

// loadProxyConfig reads file (if any) and lays the flags that were set on
// top.
func loadProxyConfig(file string, flags *proxyConfig, set map[string]bool) (*proxyConfig, error) {
	cfg := &proxyConfig{}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil {
			return nil, fmt.Errorf("--config %s: %w", file, err)
		}
	}
	over := func(name string, dst *string, v string) {
		if set[name] {
			*dst = v
		}
	}
	overList := func(name string, dst *[]string, v []string) {
		if set[name] {
			*dst = v
		}
	}
	over("tls-addr", &cfg.TLSAddr, flags.TLSAddr)
	over("http-addr", &cfg.HTTPAddr, flags.HTTPAddr)
	over("backend", &cfg.Backend, flags.Backend)
	overList("route", &cfg.Routes, flags.Routes)
	overList("allow", &cfg.Allow, flags.Allow)
	over("ask", &cfg.Ask, flags.Ask)
	over("default-name", &cfg.DefaultName, flags.DefaultName)
	overList("ca", &cfg.CA, flags.CA)
	over("email", &cfg.Email, flags.Email)
	overList("challenge", &cfg.Challenge, flags.Challenge)
	over("storage", &cfg.Storage, flags.Storage)
	over("key-type", &cfg.KeyType, flags.KeyType)
	over("profile", &cfg.Profile, flags.Profile)
	over("eab-kid", &cfg.EABKID, flags.EABKID)
	over("eab-hmac", &cfg.EABHMAC, flags.EABHMAC)
	over("ca-roots", &cfg.CARoots, flags.CARoots)
	if set["rsa-fallback"] {
		cfg.RSAFallback = flags.RSAFallback
	}
	if set["require-own-ip"] {
		cfg.RequireOwn = flags.RequireOwn
	}
	cfg.Ops.overlay(&flags.Ops, set)
	return cfg, nil
}

// devMode reports whether the proxy runs in development mode: no policy,
// no CA and no config given. Other flags (--tls-addr, --backend,
// --storage, ...) keep development mode and replace its defaults.
func devMode(file string, set map[string]bool) bool {
	if file != "" {
		return false
	}
	for _, name := range []string{"allow", "ask", "require-own-ip", "ca"} {
		if set[name] {
			return false
		}
	}
	return true
}

// proxyParts is what a config turns into; reload swaps policy and handler.
type proxyParts struct {
	policy  policy.Policy
	handler http.Handler
}

func buildParts(cfg *proxyConfig, logger *slog.Logger) (*proxyParts, error) {
	var routes []proxy.Route
	for _, r := range cfg.Routes {
		route, err := proxy.ParseRoute(r)
		if err != nil {
			return nil, usagef("--route: %v", err)
		}
		routes = append(routes, route)
	}
	router, err := proxy.NewRouter(proxy.RouterConfig{Routes: routes, Default: cfg.Backend})
	if err != nil {
		return nil, usagef("%v", err)
	}
	var checks []policy.Policy
	if len(cfg.Allow) > 0 {
		p, err := policy.ParseAllowlist(cfg.Allow...)
		if err != nil {
			return nil, usagef("--allow: %v", err)
		}
		checks = append(checks, p)
	}
	if cfg.RequireOwn {
		checks = append(checks, &policy.RequireOwnIP{})
	}
	if cfg.Ask != "" {
		checks = append(checks, &policy.AskURL{URL: cfg.Ask})
	}
	parts := &proxyParts{handler: &proxy.Handler{Router: router, Transport: proxy.NewTransport(), Logger: logger}}
	switch len(checks) {
	case 0:
	case 1:
		parts.policy = checks[0]
	default:
		parts.policy = policy.All(checks...)
	}
	return parts, nil
}

func runProxy(ctx context.Context, env *Env, flags *proxyConfig, file string, set map[string]bool) error {
	dev := devMode(file, set)
	cfg, err := loadProxyConfig(file, flags, set)
	if err != nil {
		return err
	}
	if dev {
		if cfg.TLSAddr == "" {
			cfg.TLSAddr = devTLSAddr
		}
		if cfg.Backend == "" {
			cfg.Backend = devBackend
		}
		if cfg.DefaultName == "" {
			cfg.DefaultName = devName
		}
		cfg.CA = []string{"local"}
		cfg.Allow = []string{devName}
		fmt.Fprintf(env.Stderr, "certkeeper: development mode: serving https://%s/ (%s, local CA) in front of %s\n"+
			"certkeeper: trust the local CA with: certkeeper ca root > root.pem; curl --cacert root.pem https://localhost:%s/\n"+
			"certkeeper: give --allow, --ask, --ca or --config for production\n", cfg.TLSAddr, devName, cfg.Backend, portOf(cfg.TLSAddr))
	}
	if cfg.TLSAddr == "" {
		cfg.TLSAddr = ":443"
	}
	if cfg.Storage == "" {
		cfg.Storage = defaultStorageDir()
	}
	if len(cfg.Allow) == 0 && cfg.Ask == "" {
		fmt.Fprintln(env.Stderr, "certkeeper: warning: no --allow or --ask: no new certificate will be obtained, only stored ones served")
	}
	parts, err := buildParts(cfg, env.Logger)
	if err != nil {
		return err
	}
	var current atomic.Pointer[proxyParts]
	current.Store(parts)

	keyType, err := issuer.ParseKeyType(cfg.KeyType)
	if err != nil {
		return usagef("--key-type: %v", err)
	}
	st := filestore.New(cfg.Storage)
	issuers, err := proxyIssuers(cfg, st, env)
	if err != nil {
		return err
	}
	var rules []certkeeper.NameRule
	for i, n := range cfg.Names {
		if _, err := policy.ParseAllowlist(n.Pattern); err != nil || n.Pattern == "" {
			return usagef("--config: names[%d]: pattern %q: %v", i, n.Pattern, err)
		}
		sub := *cfg
		if len(n.CA) > 0 {
			sub.CA = n.CA
		}
		if len(n.Challenge) > 0 {
			sub.Challenge = n.Challenge
		}
		if n.Profile != "" {
			sub.Profile = n.Profile
		}
		ruleIssuers, err := proxyIssuers(&sub, st, env)
		if err != nil {
			return fmt.Errorf("--config: names[%d] (%s): %w", i, n.Pattern, err)
		}
		kt, err := issuer.ParseKeyType(n.KeyType)
		if err != nil {
			return usagef("--config: names[%d] (%s): %v", i, n.Pattern, err)
		}
		if n.KeyType == "" {
			kt = ""
		}
		rules = append(rules, certkeeper.NameRule{Pattern: n.Pattern, Issuers: ruleIssuers, KeyType: kt})
	}
	up, err := upgrade.New(env.Logger)
	if err != nil {
		return err
	}
	ops := newOps(cfg.Ops, env)
	ops.listen = up.Listen
	m := &certkeeper.Manager{
		Policy: policy.Func(func(ctx context.Context, name string) error {
			p := current.Load().policy
			if p == nil {
				return fmt.Errorf("%w: no --allow or --ask configured", policy.ErrDenied)
			}
			return p.Decide(ctx, name)
		}),
		Issuers:     issuers,
		Rules:       rules,
		RSAFallback: cfg.RSAFallback,
		Storage:     ops.storage(st),
		Email:       cfg.Email,
		KeyType:     keyType,
		DefaultName: cfg.DefaultName,
		Logger:      env.Logger,
		OnEvent:     ops.observe,
	}
	defer m.Close()
	if err := ops.start(m, st); err != nil {
		return err
	}
	defer ops.stop()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().handler.ServeHTTP(w, r)
	})
	srv := &proxy.Server{TLSConfig: m.TLSConfig(), Handler: handler, Logger: env.Logger}
	ln, err := up.Listen("tls", cfg.TLSAddr)
	if err != nil {
		return portError(err, cfg.TLSAddr, "--tls-addr", "HTTPS")
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var plain *http.Server
	if cfg.HTTPAddr != "" {
		hln, err := up.Listen("http", cfg.HTTPAddr)
		if err != nil {
			ln.Close()
			return portError(err, cfg.HTTPAddr, "--http-addr", "http-01")
		}
		plain = &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- plain.Serve(hln) }()
	}
	env.Logger.Info("proxy listening", slog.String("addr", ln.Addr().String()), slog.String("http_addr", cfg.HTTPAddr))
	fmt.Fprintf(env.Stderr, "certkeeper: proxy listening on %s\n", ln.Addr())
	if err := up.Ready(); err != nil {
		env.Logger.Warn("announcing readiness", slog.Any("err", err))
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	usr2 := make(chan os.Signal, 1)
	if len(upgrade.Signals) > 0 {
		signal.Notify(usr2, upgrade.Signals...)
		defer signal.Stop(usr2)
	}
	drain := func() error {
		fmt.Fprintln(env.Stderr, "certkeeper: draining connections (at most 30 s)")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if plain != nil {
			_ = plain.Shutdown(sctx)
		}
		return err
	}
	for {
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-hup:
			next, err := loadProxyConfig(file, flags, set)
			if err == nil {
				var p *proxyParts
				if p, err = buildParts(next, env.Logger); err == nil {
					current.Store(p)
					env.Logger.Info("configuration reloaded", slog.String("config", file))
					continue
				}
			}
			env.Logger.Error("reloading configuration failed; keeping the old one", slog.Any("err", err))
		case <-usr2:
			pid, err := up.Upgrade(ctx)
			if err != nil {
				env.Logger.Error("upgrade failed; the running process keeps serving", slog.Any("err", err))
				fmt.Fprintf(env.Stderr, "certkeeper: upgrade failed; still serving: %v\n", err)
				continue
			}
			fmt.Fprintf(env.Stderr, "certkeeper: upgraded: process %d serves now\n", pid)
			up.StopAccepting()
			return drain()
		case <-ctx.Done():
			return drain()
		}
	}
}

// proxyIssuers builds the fallback chain from --ca.
func proxyIssuers(cfg *proxyConfig, st *filestore.Store, env *Env) ([]issuer.Issuer, error) {
	cas := cfg.CA
	if len(cas) == 0 {
		cas = []string{"letsencrypt"}
	}
	if (cfg.EABKID == "") != (cfg.EABHMAC == "") {
		return nil, usagef("--eab-kid and --eab-hmac go together")
	}
	order := cfg.Challenge
	if len(order) == 0 {
		order = []string{acmeca.TLSALPN01}
		if cfg.HTTPAddr != "" {
			order = append(order, acmeca.HTTP01)
		}
	}
	for _, ch := range order {
		switch ch {
		case acmeca.TLSALPN01:
		case acmeca.HTTP01:
			if cfg.HTTPAddr == "" {
				return nil, usagef("--challenge http-01 needs --http-addr (e.g. :80), where the CA connects")
			}
		default:
			return nil, usagef("--challenge %q: use tls-alpn-01 or http-01", ch)
		}
	}
	hc, err := caHTTPClient(cfg.CARoots)
	if err != nil {
		return nil, err
	}
	var out []issuer.Issuer
	for _, ca := range cas {
		if strings.EqualFold(ca, "local") {
			out = append(out, &localca.CA{Storage: st, Logger: env.Logger})
			continue
		}
		iss := &acmeca.Issuer{
			DirectoryURL: caURL(ca), Email: cfg.Email, Storage: st, Profile: cfg.Profile,
			HTTPClient: hc, ChallengeOrder: order, UserAgent: "proxy", Logger: env.Logger,
		}
		if cfg.EABKID != "" {
			iss.EAB = &acme.EAB{KeyID: cfg.EABKID, MACKey: cfg.EABHMAC}
		}
		out = append(out, iss)
	}
	return out, nil
}
