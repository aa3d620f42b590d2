// Package monitor runs the operations side of a long-running certkeeper
// front-end (a proxy, a certificate server): Prometheus metrics and the
// status page, each on a listener of its own or both on one, behind
// bearer tokens, a health check on each (/healthz, certkeeper.Health),
// and alerts when renewals keep failing or a certificate nears expiry.
//
// It exists so that a program embedding a Manager gets what the
// certkeeper command offers beside it, with the same safety rule: a
// listener reachable beyond loopback must ask for a token, because the
// metrics and the status page name every managed host (Config.Check).
// It does not serve certificates or challenges, and it does not read
// tokens from the environment: the caller passes them in.
//
//	mon := monitor.New(monitor.Config{MetricsAddr: "127.0.0.1:9100", Logger: logger})
//	m := &certkeeper.Manager{Storage: mon.Storage(st), OnEvent: mon.Observe}
//	if err := mon.Start(m, st); err != nil { ... }
//	defer mon.Close()
package monitor

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/certdeploy"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/loopback"
	"github.com/certkeeper/certkeeper/internal/nobody"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/proxy"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage"
)

// Config says what a Monitor serves. Its zero value serves nothing.
type Config struct {
	// MetricsAddr is where Prometheus metrics are served, at /metrics,
	// with the health check at /healthz (no token needed); empty: no
	// metrics.
	MetricsAddr string
	// MetricsToken is the bearer token /metrics asks for; empty:
	// StatusToken when metrics and the status page share a listener
	// (Shared), else none (refused by Check beyond loopback).
	MetricsToken string
	// StatusAddr is where the status page is served (/ and
	// /status.json), with the health check at /healthz (no token
	// needed); empty: no status page. When it is MetricsAddr both share
	// one listener.
	StatusAddr string
	// StatusToken is the token the status page asks for (?token= or a
	// bearer token); empty: none (refused by Check beyond loopback).
	StatusToken string
	// Alerter sends the alerts; nil: none. Its Storage is set by Start.
	Alerter *alert.Alerter
	// API, when set, is the certificate server's API handler: the
	// metrics count its requests (certkeeper_api_requests_total).
	API *certserver.Handler
	// Traffic, when set, is the proxy's request counts (proxy.Handler's
	// Traffic): the metrics export them (certkeeper_proxy_requests_total).
	Traffic *proxy.Traffic
	// Listen opens the listener called name ("metrics" or "status") on
	// addr; nil means net.Listen("tcp", addr). A front-end that hands its
	// sockets to its successor on an upgrade passes its own.
	Listen func(name, addr string) (net.Listener, error)
	// Logger logs the listeners and their failures; nil: slog.Default().
	Logger *slog.Logger
}

// Shared reports whether metrics and the status page share one listener.
func (c *Config) Shared() bool {
	return c.MetricsAddr != "" && c.MetricsAddr == c.StatusAddr
}

// metricsToken is the token /metrics asks for (MetricsToken).
func (c *Config) metricsToken() string {
	if c.MetricsToken == "" && c.Shared() {
		return c.StatusToken
	}
	return c.MetricsToken
}

// ExposedError is Check's refusal, or Start's for a socket handed over
// (systemd's socket activation, an upgrade) bound beyond loopback: a
// listener reachable beyond loopback without a token.
type ExposedError struct {
	// Listener is "metrics" or "status".
	Listener string
	// Addr is the listener's address (with a note when it is that of a
	// socket handed over, not the one configured).
	Addr string
	// Shared reports whether metrics and the status page share the
	// listener (a status token then serves for both).
	Shared bool
}

func (e *ExposedError) Error() string {
	return fmt.Sprintf("the %s listener %s is reachable beyond loopback without a token: set one, or listen on 127.0.0.1",
		e.Listener, e.Addr)
}

// Check refuses, before anything listens, a listener reachable beyond
// loopback without a token: the metrics and the status page name every
// managed host; its error is an *ExposedError. It refuses a token shorter
// than 16 characters too, as the server's token file does: guesses are
// not limited.
func (c *Config) Check() error {
	for _, t := range []struct{ what, token string }{{"metrics", c.MetricsToken}, {"status page", c.StatusToken}} {
		if t.token != "" && len(t.token) < MinTokenLen {
			return fmt.Errorf("the %s token is %d characters, fewer than the %d a token needs: make one with: openssl rand -hex 24", t.what, len(t.token), MinTokenLen)
		}
	}
	if c.MetricsAddr != "" && !Loopback(c.MetricsAddr) && c.metricsToken() == "" {
		return &ExposedError{Listener: "metrics", Addr: c.MetricsAddr, Shared: c.Shared()}
	}
	if c.StatusAddr != "" && !Loopback(c.StatusAddr) && c.StatusToken == "" {
		return &ExposedError{Listener: "status", Addr: c.StatusAddr, Shared: c.Shared()}
	}
	return nil
}

// Loopback reports whether addr (host:port) listens on loopback only:
// localhost or a loopback IP address. An empty host (":9100") listens
// everywhere.
func Loopback(addr string) bool { return loopback.Addr(addr) }

// Bearer wraps h: with a token, a request must carry it as
// "Authorization: Bearer TOKEN" (the scheme in any case; the token
// compared in constant time) or get 401
// with a WWW-Authenticate header naming realm. An empty token returns h.
func Bearer(token, realm string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, given, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") { // the scheme's case does not matter (RFC 9110, 11.1)
			given = ""
		}
		got := sha256.Sum256([]byte(given))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
			http.Error(w, "a bearer token is required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ListenError is Start's failure to listen on one address.
type ListenError struct {
	// Listener is "metrics" or "status"; Shared reports whether it
	// serves both.
	Listener string
	Shared   bool
	// Addr is the address that could not be used.
	Addr string
	// What names what was to be served there, for messages.
	What string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listening on %s for the %s: %v", e.Addr, e.What, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Monitor serves what its Config says. Build it with New before the
// Manager (it wraps the storage and takes the events), then Start it
// once the Manager exists, and Close it when done.
type Monitor struct {
	cfg     Config
	metrics *metrics.Metrics
	// refusals counts the connections the front-end's listeners and the
	// Monitor's own refused over their limits; nil without metrics.
	refusals *connlimit.Refusals
	events   statuspage.Recorder
	servers  []*http.Server
	cancel   context.CancelFunc
	done     chan struct{}

	reloadMu sync.Mutex // guards the fields below (NoteReload)
	readAt   time.Time  // when the configuration that runs was read
	failedAt time.Time  // the last reload, if it failed
	failed   string     // its error
}

// NoteReload records the outcome of a reload of the configuration file
// (SIGHUP): err nil, the file's configuration runs now; else it was
// refused and the one before runs. The metrics
// (certkeeper_config_last_reload_successful) and the status page say
// so; the signal that asked for it cannot fail (an ops trial's
// systemctl reload succeeded on a mistyped key).
func (m *Monitor) NoteReload(err error) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if err == nil {
		m.readAt, m.failedAt, m.failed = time.Now(), time.Time{}, ""
		return
	}
	m.failedAt, m.failed = time.Now(), err.Error()
}

// reloadStatus is NoteReload's record: whether the last reload succeeded
// (or none failed), and when the configuration that runs was read.
func (m *Monitor) reloadStatus() (ok bool, readAt time.Time) {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	return m.failed == "", m.readAt
}

// warnings are the page's notes on the process itself: the storage
// failing its health check, certificates held in memory only, a failed
// reload (an ops trial's page showed every certificate fine meanwhile).
func (m *Monitor) warnings(ctx context.Context, mgr *certkeeper.Manager, health *certkeeper.Health) []string {
	var out []string
	if err := health.Check(ctx); err != nil {
		out = append(out, "The storage fails its health check: nothing new is stored, issued or renewed until it answers: "+err.Error())
	}
	if mgr != nil {
		if u := mgr.Unstored(); len(u) > 0 {
			var names []string
			for _, n := range u {
				names = append(names, strings.Join(n, ", "))
			}
			out = append(out, fmt.Sprintf("%d certificate(s) issued but not stored, served from memory and offered to the storage every 30 s "+
				"(a restart before then loses them): %s", len(u), strings.Join(names, "; ")))
		}
	}
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if m.failed != "" {
		out = append(out, fmt.Sprintf("Reloading the configuration failed at %s, so the one read at %s still runs: %s",
			m.failedAt.UTC().Format(time.RFC3339), m.readAt.UTC().Format(time.RFC3339), m.failed))
	}
	return out
}

// healthStatus is what the metrics read of the storage's health: whether
// it answers, and how many certificates are held in memory only.
func healthStatus(mgr *certkeeper.Manager, health *certkeeper.Health) func() (bool, int) {
	return func() (bool, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n := 0
		if mgr != nil {
			n = len(mgr.Unstored())
		}
		return health.Check(ctx) == nil, n
	}
}

// New returns a Monitor for c. Nothing listens until Start.
func New(c Config) *Monitor {
	m := &Monitor{cfg: c, readAt: time.Now()}
	if c.MetricsAddr != "" {
		m.metrics, m.refusals = metrics.New(), new(connlimit.Refusals)
	}
	return m
}

// Refusals is what the front-end puts in its listeners' connection
// limits (connlimit.Limits.Refusals, proxy.Server.Refusals) for the
// metrics to count the connections and requests they refuse
// (certkeeper_connections_refused_total), as they count the Monitor's
// own listeners'; nil when metrics are off.
func (m *Monitor) Refusals() *connlimit.Refusals { return m.refusals }

func (m *Monitor) logger() *slog.Logger {
	if m.cfg.Logger != nil {
		return m.cfg.Logger
	}
	return slog.Default()
}

// Storage returns st as the Manager should see it: timed when metrics
// are on.
func (m *Monitor) Storage(st storage.Storage) storage.Storage {
	if m.metrics != nil {
		return m.metrics.Storage(st)
	}
	return st
}

// Observe is the Manager's OnEvent: the metrics, the status page's
// recent events and the alerter each get every event.
func (m *Monitor) Observe(e certkeeper.Event) {
	if m.metrics != nil {
		m.metrics.Observe(e)
	}
	m.events.Observe(e)
	if m.cfg.Alerter != nil {
		m.cfg.Alerter.Observe(e)
	}
}

// Follow has d follow mgr (certdeploy.Deployer.Follow, deploying what st
// holds) and, with metrics on, exports its failures
// (certkeeper_deploy_failures_total, certkeeper_deploy_failing). Call it
// for one Deployer, before or after Start; stop ends the following.
func (m *Monitor) Follow(ctx context.Context, d *certdeploy.Deployer, mgr *certkeeper.Manager, st storage.Storage) (stop func()) {
	if m.metrics != nil {
		if err := m.metrics.RegisterDeploy(d); err != nil { // only a second Deployer can collide
			m.logger().Warn("the deployment's metrics are not exported", slog.Any("err", err))
		}
	}
	return d.Follow(ctx, mgr, st)
}

// Start checks the Config, opens the listeners and starts the alerter.
// st is the storage the status page and alerts read (unwrapped). The
// status page marks the stored names mgr's Policy no longer allows. A
// listener that cannot be opened closes those already open and returns a
// *ListenError.
func (m *Monitor) Start(mgr *certkeeper.Manager, st storage.Storage) error {
	c := &m.cfg
	if err := c.Check(); err != nil {
		return err
	}
	health := healthOf(mgr, st, m.logger())
	var metricsHandler http.Handler
	if m.metrics != nil {
		if err := m.metrics.Register(mgr); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		if err := m.metrics.RegisterRefusals(m.refusals); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		if err := m.metrics.RegisterReloads(m.reloadStatus); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		if err := m.metrics.RegisterHealth(healthStatus(mgr, health)); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		if c.Traffic != nil {
			if err := m.metrics.RegisterTraffic(c.Traffic); err != nil {
				return fmt.Errorf("registering the proxy's metrics: %w", err)
			}
		}
		if c.API != nil {
			if err := m.metrics.RegisterAPI(c.API); err != nil {
				return fmt.Errorf("registering the API's metrics: %w", err)
			}
		}
		metricsHandler = Bearer(c.metricsToken(), "certkeeper metrics", m.metrics.Handler())
		if c.metricsToken() == "" {
			metricsHandler = loopback.Guard(metricsHandler, noTokenHint)
		}
	}
	var status http.Handler
	if c.StatusAddr != "" {
		page := &statuspage.Handler{Storage: st, Events: &m.events, Token: c.StatusToken, Logger: m.logger(), Allowed: allowedBy(mgr),
			Warnings: func(ctx context.Context) []string { return m.warnings(ctx, mgr, health) }}
		if mgr != nil {
			page.LastSeen = mgr.LastSeen // the page shows a handshake of a minute ago, not storage's of five
			page.CertFiles = mgr.StatusOfCertFiles
		}
		status = page
		if c.StatusToken == "" {
			status = loopback.Guard(page, noTokenHint)
		}
	}
	if c.Shared() {
		mux := withHealth(health, c.StatusToken == "")
		mux.Handle("/metrics", metricsHandler)
		mux.Handle("/", status)
		if err := m.serve("metrics", c.MetricsAddr, "metrics and status page", mux, c.StatusToken == ""); err != nil {
			return err
		}
	} else {
		if metricsHandler != nil {
			mux := withHealth(health, c.metricsToken() == "")
			mux.Handle("/metrics", metricsHandler)
			if err := m.serve("metrics", c.MetricsAddr, "metrics", mux, c.metricsToken() == ""); err != nil {
				return err
			}
		}
		if status != nil {
			mux := withHealth(health, c.StatusToken == "")
			mux.Handle("/", status)
			if err := m.serve("status", c.StatusAddr, "status page", mux, c.StatusToken == ""); err != nil {
				return err
			}
		}
	}
	if a := c.Alerter; a != nil {
		a.Storage = st
		if mgr != nil && a.CertFiles == nil {
			a.CertFiles = mgr.StatusOfCertFiles
		}
		ctx, cancel := context.WithCancel(context.Background())
		m.cancel, m.done = cancel, make(chan struct{})
		go func() {
			defer close(m.done)
			a.Run(ctx)
		}()
	}
	return nil
}

// healthOf is the health check the listeners answer at /healthz: mgr's
// own (Manager.Health, shared with whatever else answers it), or one on
// st without a Manager.
func healthOf(mgr *certkeeper.Manager, st storage.Storage, logger *slog.Logger) *certkeeper.Health {
	if mgr != nil {
		return mgr.Health()
	}
	return &certkeeper.Health{Storage: st, Logger: logger}
}

// withHealth returns a mux that answers /healthz with health, without a
// token (it tells only whether the storage answers, and why not in a few
// words); on a listener without a token (open) only for a loopback host,
// as the rest of it (loopback.Guard).
func withHealth(health http.Handler, open bool) *http.ServeMux {
	if open {
		health = loopback.Guard(health, noTokenHint)
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", health)
	return mux
}

// allowedBy is the status page's check of stored names against mgr's
// Policy, or nil when it has none (a server, which issues what its
// clients ask for).
func allowedBy(mgr *certkeeper.Manager) func(ctx context.Context, name string) error {
	if mgr == nil || mgr.Policy == nil {
		return nil
	}
	return mgr.Policy.Decide
}

// serve serves h on the listener called name, on addr; open says it has
// no token, so that its socket must be bound to loopback.
func (m *Monitor) serve(name, addr, what string, h http.Handler, open bool) error {
	listen := m.cfg.Listen
	if listen == nil {
		listen = func(_, addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	ln, err := listen(name, addr)
	if err != nil {
		m.Close()
		return &ListenError{Listener: name, Shared: m.cfg.Shared(), Addr: addr, What: what, Err: err}
	}
	if bound := ln.Addr().String(); open && !loopback.Addr(bound) {
		// A socket handed over (systemd's socket activation, an
		// upgrade) bound beyond loopback, where the address given is
		// loopback: Check saw only the address.
		ln.Close()
		m.Close()
		return &ExposedError{Listener: name, Addr: bound + " (the socket handed over by systemd or an upgrade)", Shared: m.cfg.Shared()}
	}
	logger := m.logger()
	srv := &http.Server{Handler: nobody.Refuse(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	m.servers = append(m.servers, srv)
	go func() {
		// The default connection limits (package connlimit): a scraper
		// or a browser needs a few connections; a flood gets at most
		// 10,000, 1,000 per client address, counted in the metrics.
		// net.ErrClosed: an upgrade (SIGUSR2) closed the listener, handed
		// to the new process; nothing failed.
		if err := srv.Serve(connlimit.Listen(ln, connlimit.Limits{Refusals: m.refusals}, logger)); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			logger.Error("serving the "+what, slog.String("addr", addr), slog.Any("err", err))
		}
	}()
	logger.Info(what+" listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// Close closes the listeners (waiting up to 5 s for open requests) and
// stops the alerter. It may be called more than once.
func (m *Monitor) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range m.servers {
		_ = s.Shutdown(ctx)
	}
	m.servers = nil
	if m.cancel != nil {
		m.cancel()
		<-m.done
		m.cancel = nil
	}
}

// MinTokenLen is the fewest characters Check takes in a token: 128 bits
// of base64 or hex is longer.
const MinTokenLen = 16

// noTokenHint is what a request for another host than loopback, on a
// listener without a token, is told to do (loopback.Guard).
const noTokenHint = "ask through 127.0.0.1 (an SSH tunnel from elsewhere), or give this listener a token"
