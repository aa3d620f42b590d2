package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/internal/proxyprotocol"
	"github.com/certkeeper/certkeeper/internal/serveloop"
	"github.com/certkeeper/certkeeper/internal/upgrade"
	"github.com/certkeeper/certkeeper/policy"
	"github.com/certkeeper/certkeeper/proxy"
)

// proxyConfig is the proxy's configuration: the engine's (shared with
// the server) plus its own. Every flag has a key of the same name (with
// "_" for "-") in the --config YAML file; docs/config.md documents each.
type proxyConfig struct {
	engineConfig `yaml:",inline"`
	TLSAddr      string        `yaml:"tls_addr" arg:"ADDR" help:"ADDR to serve HTTPS on (default :443; development mode 127.0.0.1:8443)"`
	HTTPAddr     string        `yaml:"http_addr" arg:"ADDR" help:"ADDR to answer http-01 and redirect to HTTPS on; off unless given\n(the backend usually owns :80, so the proxy uses tls-alpn-01)"`
	Backend      string        `yaml:"backend" arg:"URL" help:"URL of the backend for every name without a --route, or HOST:PORT for http://HOST:PORT\n(default: port 80 on the IP address the client connected to)"`
	Routes       []string      `yaml:"route" arg:"NAME=URL" help:"NAME=URL: send NAME (or a pattern like *.a.example) to its own backend; NAME may get a\ncertificate without --allow (whatever --ask says); repeatable"`
	DefaultName  string        `yaml:"default_name" arg:"NAME" help:"NAME whose certificate clients without SNI get"`
	IssueTimeout time.Duration `yaml:"issue_timeout" arg:"DURATION" default:"30s" help:"a handshake for a new name waits up to DURATION for its certificate, then fails; the\nissuance goes on (up to 5 minutes), and the handshakes after it get the certificate"`
	BackendCA    string        `yaml:"backend_ca" arg:"FILE" help:"PEM FILE of roots that https:// backends' certificates may chain to, beside the system's\n(a private CA's root, or a backend's self-signed certificate); read at start and at each reload"`
	BackendWait  time.Duration `yaml:"backend_timeout" arg:"DURATION" default:"60s" help:"a backend must start its answer (send its header) within DURATION, else the client gets a\n504 page (nginx's proxy_read_timeout); the body may then take as long as it takes"`
	AccessLog    bool          `yaml:"access_log" help:"log one line per request at info: name, client address, method, path (without the query),\nstatus, bytes, duration, backend, user agent"`
	Drain        time.Duration `yaml:"drain" arg:"DURATION" default:"30s" help:"on SIGINT or SIGTERM, open requests get up to DURATION to finish; those still waiting on\ntheir backend then get a 503 page, and streams and WebSockets are closed"`
}

// proxyChallengeHelp is the usage of the proxy's --challenge.
const proxyChallengeHelp = "challenge `TYPE` to use: tls-alpn-01, http-01 (needs --http-addr), dns-01 (needs --dns),\n" +
	"dns-persist-01; repeatable (default: tls-alpn-01, plus http-01 with --http-addr and dns-01\nwith --dns: whichever of them the CA offers)"

func proxyCmd() *Command {
	c := &proxyConfig{engineConfig: engineConfig{Ops: defaultOps()}}
	var src source
	return &Command{
		UsageLine: "certkeeper proxy [flags]",
		Serves:    true,
		Short:     "HTTPS in front of plain-HTTP sites",
		Flags:     func(fs *flag.FlagSet) { src.register(fs, c, &c.engineConfig, proxyChallengeHelp) },
		ArgsHint:  "names go with --allow (e.g. --allow a.example)",
		Run: func(ctx context.Context, env *Env, args []string) error {
			src.parsed(env, &c.engineConfig)
			if src.check {
				return reportCheck(env, src.attributeAll(c, checkProxy(env, c, &src)))
			}
			return src.attribute(c, runProxy(ctx, env, c, &src))
		},
	}
}

// loadProxyConfig reads file (if any) and lays the flags that were set on
// top.
func loadProxyConfig(src *source, flags *proxyConfig) (*proxyConfig, error) {
	cfg := &proxyConfig{}
	if err := readConfigFile(src.file, cfg); err != nil {
		return nil, err
	}
	overlay(cfg, flags, &cfg.engineConfig, src.set, "issue-timeout", "backend-timeout", "drain")
	src.noteFlags(cfg, &cfg.engineConfig)
	cfg.credit = src.credit(cfg)
	return cfg, nil
}

// devMode reports whether the proxy runs in development mode: no policy,
// no CA and no config given. Other flags (--tls-addr, --backend,
// --storage, ...) keep development mode and replace its defaults.
func devMode(src *source) bool {
	if src.file != "" {
		return false
	}
	for _, name := range []string{"allow", "route", "ask", "require-own-ip", "ca"} {
		if src.set[name] {
			return false
		}
	}
	return true
}

// defaults fills in what neither the file nor the flags gave: the
// development mode's settings (dev), or production's.
func (c *proxyConfig) defaults(dev bool) {
	if dev {
		if c.TLSAddr == "" {
			c.TLSAddr = proxy.DevAddr
		}
		if c.Backend == "" {
			c.Backend = proxy.DevBackend
		}
		if c.DefaultName == "" {
			c.DefaultName = proxy.DevName
		}
		c.CA = []string{"local"}
		c.Allow = []string{proxy.DevName}
	}
	if c.TLSAddr == "" {
		c.TLSAddr = ":443"
	}
}

// checkAddrs checks the syntax of the proxy's listen addresses and of
// its --default-name (clients without SNI would get a handshake error),
// and the ranges of --issue-timeout, --backend-timeout and --drain.
func (c *proxyConfig) checkAddrs() error {
	if c.IssueTimeout < time.Second || c.IssueTimeout > 5*time.Minute { // the issuance itself gives up at 5 minutes
		return usagef("--issue-timeout %s: want 1s to 5m (how long a handshake waits for a new name's certificate)", c.IssueTimeout)
	}
	if c.BackendWait < time.Second {
		return usagef("--backend-timeout %s: want 1s or more (how long a backend may take to start its answer)", c.BackendWait)
	}
	if c.Drain <= 0 {
		return usagef("--drain %s: must be positive (how long open requests get to finish at a stop)", c.Drain)
	}
	if _, err := (hostname.Normalizer{AllowIP: true}).Normalize(c.DefaultName); c.DefaultName != "" && err != nil {
		return usagef("--default-name: %v", hostname.WithHostHint(c.DefaultName, err))
	}
	if err := c.parseProxyFrom(); err != nil {
		return err
	}
	th, _, _ := net.SplitHostPort(c.TLSAddr)
	if h, p, _ := net.SplitHostPort(c.HTTPAddr); p == "80" && c.Backend == "" && len(c.Routes) == 0 && (h == "" || h == "0.0.0.0" || h == "::" || h == th) {
		return usagef("--http-addr %s takes port 80, where requests go without --backend (port 80 of the address the client connected to): each would get the proxy's own redirect to HTTPS; give --backend with your site's address, e.g. --backend 127.0.0.1:8080", c.HTTPAddr)
	}
	main := []string{"--tls-addr", c.TLSAddr, "--http-addr", c.HTTPAddr}
	return errors.Join(cmdline.CheckListenAddrs(main...),
		cmdline.CheckSeparatePorts(main, "--metrics-addr", c.Ops.MetricsAddr, "--status-addr", c.Ops.StatusAddr))
}

// proxyFrontEnd is what the proxy offers the engine.
func proxyFrontEnd(c *proxyConfig) frontEnd {
	return frontEnd{http01: c.HTTPAddr != "", alpn: true, http01Via: "--http-addr (e.g. :80), where the CA connects", userAgent: "proxy"}
}

// checkProxy is proxy --check-config: everything runProxy checks before
// it opens storage and listens, every error found.
func checkProxy(env *Env, flags *proxyConfig, src *source) []error {
	cfg, err := loadProxyConfig(src, flags)
	if err != nil {
		return []error{err}
	}
	cfg.defaults(devMode(src))
	if devMode(src) {
		printDevMode(env, cfg, "would serve")
	}
	printWarnings(env, proxySummary(cfg, devMode(src)))
	errs := cfg.engineConfig.check(env, proxyFrontEnd(cfg), devMode(src))
	if err := cfg.checkAddrs(); err != nil {
		errs = append([]error{err}, errs...)
	}
	if _, err := proxyHandler(cfg, env.Logger, nil); err != nil { // the policy is checked above
		errs = append(errs, err)
	}
	return errs
}

// proxyParts is what a config turns into; reload swaps policy and handler,
// and tells what changed since cfg.
type proxyParts struct {
	policy  policy.Policy
	handler http.Handler
	cfg     *proxyConfig
}

// buildParts is what cfg turns into (proxy.Backends, the policy); its
// errors name the flag at fault.
func buildParts(cfg *proxyConfig, logger *slog.Logger, traffic *proxy.Traffic) (*proxyParts, error) {
	h, err := proxyHandler(cfg, logger, traffic)
	if err != nil {
		return nil, err
	}
	cfg.routed = proxy.Backends{Routes: cfg.Routes}.Patterns()
	p, err := cfg.policy()
	if err != nil {
		return nil, err
	}
	return &proxyParts{policy: p, handler: h, cfg: cfg}, nil
}

// proxyHandler is the handler of cfg's backends and routes; its error
// names the flag of every bad one.
func proxyHandler(cfg *proxyConfig, logger *slog.Logger, traffic *proxy.Traffic) (http.Handler, error) {
	router, err := proxy.Backends{Default: cfg.Backend, Routes: cfg.Routes, DefaultName: cfg.DefaultName}.Router()
	if err != nil {
		return nil, cmdline.MapErrors(err, func(e error) error {
			if se, ok := errors.AsType[*proxy.SettingError](e); ok && se.Setting != "" {
				return usagef("--%s: %v", se.Setting, se.Err)
			}
			return usagef("%v", e)
		})
	}
	t := proxy.NewTransport()
	t.ResponseHeaderTimeout = cfg.BackendWait
	if cfg.BackendCA != "" {
		roots, err := os.ReadFile(cfg.BackendCA)
		if err == nil {
			err = proxy.TrustBackends(t, roots)
		}
		if err != nil {
			return nil, usagef("--backend-ca %s: %v", cfg.BackendCA, err)
		}
	}
	h := &proxy.Handler{Router: router, Transport: t, Logger: logger, Traffic: traffic}
	if cfg.AccessLog {
		h.AccessLog = logger
	}
	return h, nil
}

// runProxy serves until ctx ends, an upgrade (SIGUSR2) hands its
// listeners to a new process, or a listener fails; SIGHUP reloads the
// routes and the policy from file and the flags.
func runProxy(ctx context.Context, env *Env, flags *proxyConfig, src *source) error {
	dev := devMode(src)
	cfg, err := loadProxyConfig(src, flags)
	if err != nil {
		return err
	}
	if err := cfg.applyLogging(env, &flags.engineConfig); err != nil {
		return err
	}
	cfg.defaults(dev)
	if err := cfg.checkAddrs(); err != nil {
		return err
	}
	if dev {
		printDevMode(env, cfg, "serving")
		warnDevBackend(ctx, env, cfg.Backend)
	}
	if err := cfg.Ops.check(); err != nil {
		return err
	}
	traffic := new(proxy.Traffic) // one for every reload's handler
	parts, err := buildParts(cfg, env.Logger, traffic)
	if err != nil {
		return err
	}
	var current atomic.Pointer[proxyParts]
	current.Store(parts)
	var m *certkeeper.Manager // set before the first reload
	return (&service{
		cfg: &cfg.engineConfig, fe: proxyFrontEnd(cfg), summary: proxySummary(cfg, dev), drain: cfg.Drain,
		policy: func() policy.Policy { return current.Load().policy },
		setup: func(mgr *certkeeper.Manager) {
			m, mgr.DefaultName, mgr.HandshakeWait = mgr, cfg.DefaultName, cfg.IssueTimeout
		},
		reload: func() error { return reloadProxy(env, m, cfg, flags, src, &current, traffic) }, traffic: traffic,
		listen: func(loop *serveloop.Loop, up *upgrade.Upgrader, m *certkeeper.Manager) error {
			return proxyListen(loop, env, up, cfg, m, &current)
		},
	}).serve(ctx, env)
}

// printDevMode tells the user of development mode what is served and how
// to trust it.
func printDevMode(env *Env, cfg *proxyConfig, verb string) {
	fmt.Fprintf(env.Stderr, "certkeeper: development mode: %s https://%s:%s/ (on %s, local CA) in front of %s\n"+
		"certkeeper: trust the local CA on this machine with: %[7]s (undo: ca untrust)\n"+
		"certkeeper: or for one client: certkeeper ca root --storage %[6]s > root.pem; curl --cacert root.pem https://%[2]s:%[3]s/\n"+
		"certkeeper: give --allow, --route, --ask, --ca or --config for production\n",
		verb, proxy.DevName, cmdline.PortOf(cfg.TLSAddr), cfg.TLSAddr, cfg.Backend, cmdline.ShellQuote(storageWhere(cfg.Storage)), cmdline.AsAdmin("certkeeper ca trust --storage "+cmdline.ShellQuote(storageWhere(cfg.Storage))))
}

// warnDevBackend says so at start when nothing answers on the development
// mode's backend: the first request would otherwise get a 502 page, and
// the reason only a log line. Production backends are not probed (they
// may come up later, or differ per client address).
func warnDevBackend(ctx context.Context, env *Env, backend string) {
	addr, err := proxy.DialBackend(ctx, backend, time.Second)
	if host, port, splitErr := net.SplitHostPort(addr); err != nil && splitErr == nil {
		fmt.Fprintf(env.Stderr, "certkeeper: nothing answers on %s yet: start your site there (e.g. python3 -m http.server %s --bind %s), or point --backend at it\n",
			backend, port, host)
	}
}

// proxyListen starts the proxy's listeners: HTTPS on --tls-addr, through
// the handler current holds at each request, and http-01 answers and
// redirects on --http-addr.
func proxyListen(loop *serveloop.Loop, env *Env, up *upgrade.Upgrader, cfg *proxyConfig, m *certkeeper.Manager, current *atomic.Pointer[proxyParts]) error {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().handler.ServeHTTP(w, r)
	})
	srv := &proxy.Server{TLSConfig: m.TLSConfig(), Handler: handler, Logger: env.Logger, MaxConns: cfg.MaxConns, MaxConnsPerClient: cfg.MaxPerClient,
		ProxyProtocolFrom: cfg.proxyFrom, Refusals: loop.Limits.Refusals}
	ln, err := up.Listen("tls", cfg.TLSAddr)
	if err != nil {
		return cmdline.ListenError(err, cfg.TLSAddr, "--tls-addr", "HTTPS")
	}
	loop.Serve(srv, func() error { return srv.Serve(ln) })
	if cfg.HTTPAddr != "" {
		hln, err := up.Listen("http", cfg.HTTPAddr)
		if err != nil {
			return portError(err, cfg.HTTPAddr, "--http-addr", "http-01", false)
		}
		// ReadTimeout: its answers (http-01, redirects) are immediate, and
		// it bounds how long a body nobody reads may hold a connection.
		plain := &http.Server{Handler: m.HTTPHandler(certkeeper.RedirectHTTPSListener(cmdline.PortOf(ln.Addr().String()))), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(env.Logger.Handler(), slog.LevelDebug)}
		loop.Serve(plain, func() error {
			return plain.Serve(proxyprotocol.ListenLimited(hln, loop.Limits, loop.ProxyProtocolFrom, env.Logger))
		})
	}
	fmt.Fprintf(env.Stderr, "certkeeper: proxy listening on %s\n", ln.Addr())
	return nil
}

// reloadProxy reads the configuration again (SIGHUP) and swaps in its
// routes and policy, saying what changed since the last one and warning
// of the changes that take a restart (those of the running cfg); a
// configuration that does not load keeps the old one.
func reloadProxy(env *Env, m *certkeeper.Manager, cfg, flags *proxyConfig, src *source, current *atomic.Pointer[proxyParts], traffic *proxy.Traffic) error {
	warnKeysChanged(env, &cfg.DNS, cfg.keyDigests)
	if src.file == "" {
		env.Logger.Info("SIGHUP: no --config file to read again; nothing changed")
		return nil
	}
	next, err := loadProxyConfig(src, flags)
	if err == nil {
		next.defaults(devMode(src))
		routed := *next
		routed.DefaultName = cfg.DefaultName // the Manager's, until a restart
		var p *proxyParts
		if p, err = buildParts(&routed, env.Logger, traffic); err == nil && p.policy == nil && current.Load().policy != nil {
			err = errAllowsNone
		}
		if err = cmdline.Attribute(err, next.credit); err == nil {
			p.cfg, next.routed = next, routed.routed
			prev := current.Swap(p).cfg
			logReloaded(env, "configuration reloaded", prev, cfg, next, []string{"route", "backend", "backend_ca", "backend_timeout", "access_log"}, slog.String("config", src.file))
			warnStillServed(env, m, &prev.engineConfig, &next.engineConfig)
			next.printNotes(env)
			printWarnings(env, proxySummary(next, devMode(src)))
			return nil
		}
	}
	return err
}
