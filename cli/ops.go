package cli

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/internal/hook"
	"github.com/certkeeper/certkeeper/internal/nobody"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/statuspage"
	"github.com/certkeeper/certkeeper/storage"
)

// opsConfig holds the operations flags a long-running front-end (proxy,
// server) shares: metrics, the status page and alerts. Its keys sit in
// the front-end's config file beside its own.
type opsConfig struct {
	MetricsAddr    string        `yaml:"metrics_addr"`
	MetricsToken   string        `yaml:"metrics_token"`
	StatusAddr     string        `yaml:"status_addr"`
	StatusToken    string        `yaml:"status_token"`
	AlertWebhook   string        `yaml:"alert_webhook"`
	AlertExec      string        `yaml:"alert_exec"`
	AlertFailing   time.Duration `yaml:"alert_failing_for"`
	AlertExpiring  time.Duration `yaml:"alert_expiring_within"`
	AlertCheckEach time.Duration `yaml:"alert_check_every"`
}

func (o *opsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "`ADDR` to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9100); off unless\ngiven; beyond loopback it needs --metrics-token (the metrics name every managed host)")
	fs.StringVar(&o.MetricsToken, "metrics-token", "", "`TOKEN` /metrics asks for as a bearer token; default $CERTKEEPER_METRICS_TOKEN, or\n--status-token when --metrics-addr is --status-addr")
	fs.StringVar(&o.StatusAddr, "status-addr", "", "`ADDR` to serve the status page on (/ and /status.json), e.g. 127.0.0.1:9101; off unless\ngiven; beyond loopback it needs --status-token")
	fs.StringVar(&o.StatusToken, "status-token", "", "`TOKEN` the status page asks for (?token= or a bearer token); default $CERTKEEPER_STATUS_TOKEN")
	fs.StringVar(&o.AlertWebhook, "alert-webhook", "", "`URL` to POST a JSON alert to when a renewal keeps failing or a certificate nears expiry")
	fs.StringVar(&o.AlertExec, "alert-exec", "", "`COMMAND` to run (with the shell) for each alert; $CERTKEEPER_ALERT_JSON holds the alert")
	o.AlertFailing = alert.DefaultFailingFor
	fs.Var((*durationFlag)(&o.AlertFailing), "alert-failing-for", "alert when renewals have failed for this `DURATION`")
	o.AlertExpiring = alert.DefaultExpiringWithin
	fs.Var((*durationFlag)(&o.AlertExpiring), "alert-expiring-within", "alert when a certificate expires within this `DURATION`")
	o.AlertCheckEach = alert.DefaultEvery
	fs.Var((*durationFlag)(&o.AlertCheckEach), "alert-check-every", "check the certificates for alerts this often (`DURATION`)")
}

// overlay lays the flags that were set on top of o.
func (o *opsConfig) overlay(flags *opsConfig, set map[string]bool) {
	str := func(name string, dst *string, v string) {
		if set[name] {
			*dst = v
		}
	}
	dur := func(name string, dst *time.Duration, v time.Duration) {
		if set[name] || *dst == 0 {
			*dst = v
		}
	}
	str("metrics-addr", &o.MetricsAddr, flags.MetricsAddr)
	str("metrics-token", &o.MetricsToken, flags.MetricsToken)
	str("status-addr", &o.StatusAddr, flags.StatusAddr)
	str("status-token", &o.StatusToken, flags.StatusToken)
	str("alert-webhook", &o.AlertWebhook, flags.AlertWebhook)
	str("alert-exec", &o.AlertExec, flags.AlertExec)
	dur("alert-failing-for", &o.AlertFailing, flags.AlertFailing)
	dur("alert-expiring-within", &o.AlertExpiring, flags.AlertExpiring)
	dur("alert-check-every", &o.AlertCheckEach, flags.AlertCheckEach)
}

// ops runs the operations side of a front-end: metrics, status page,
// alerts. Build it before the Manager (it wraps the storage and takes the
// events), then start it.
type ops struct {
	cfg     opsConfig
	env     *Env
	metrics *metrics.Metrics
	events  statuspage.Recorder
	alerter *alert.Alerter
	servers []*http.Server
	listen  func(name, addr string) (net.Listener, error) // nil: net.Listen
	cancel  context.CancelFunc
	done    chan struct{}
}

func newOps(cfg opsConfig, env *Env) *ops {
	o := &ops{cfg: cfg, env: env}
	if cfg.MetricsAddr != "" {
		o.metrics = metrics.New()
	}
	if cfg.AlertWebhook != "" || cfg.AlertExec != "" {
		o.alerter = &alert.Alerter{
			Webhook: cfg.AlertWebhook, FailingFor: cfg.AlertFailing, ExpiringWithin: cfg.AlertExpiring,
			Every: cfg.AlertCheckEach, Logger: env.Logger,
		}
		if cmd := cfg.AlertExec; cmd != "" {
			o.alerter.Exec = func(ctx context.Context, a alert.Alert, payload []byte) error {
				return hook.Run(ctx, cmd, "CERTKEEPER_ALERT_JSON="+string(payload),
					"CERTKEEPER_ALERT_REASON="+a.Reason, "CERTKEEPER_ALERT_MESSAGE="+a.Message,
					"CERTKEEPER_NAMES="+strings.Join(a.Names, " "))
			}
		}
	}
	return o
}

// storage returns st as the Manager should see it: timed when metrics are
// on.
func (o *ops) storage(st storage.Storage) storage.Storage {
	if o.metrics != nil {
		return o.metrics.Storage(st)
	}
	return st
}

// observe is the Manager's OnEvent: every consumer gets every event.
func (o *ops) observe(e certkeeper.Event) {
	if o.metrics != nil {
		o.metrics.Observe(e)
	}
	o.events.Observe(e)
	if o.alerter != nil {
		o.alerter.Observe(e)
	}
}

// statusToken is the token the status page asks for: --status-token, or
// $CERTKEEPER_STATUS_TOKEN.
func (o *opsConfig) statusToken() string {
	if o.StatusToken != "" {
		return o.StatusToken
	}
	return os.Getenv("CERTKEEPER_STATUS_TOKEN")
}

// shared reports whether metrics and the status page share one listener.
func (o *opsConfig) shared() bool {
	return o.MetricsAddr != "" && o.MetricsAddr == o.StatusAddr
}

// metricsToken is the token /metrics asks for: --metrics-token,
// $CERTKEEPER_METRICS_TOKEN, or the status page's when they share a
// listener.
func (o *opsConfig) metricsToken() string {
	if o.MetricsToken != "" {
		return o.MetricsToken
	}
	if t := os.Getenv("CERTKEEPER_METRICS_TOKEN"); t != "" {
		return t
	}
	if o.shared() {
		return o.statusToken()
	}
	return ""
}

// check refuses, before anything listens, an ops listener reachable
// beyond loopback without a token: the metrics and the status page name
// every managed host.
func (o *opsConfig) check() error {
	if o.MetricsAddr != "" && !loopbackAddr(o.MetricsAddr) && o.metricsToken() == "" {
		fix := "set --metrics-token (or $CERTKEEPER_METRICS_TOKEN)"
		if o.shared() {
			fix = "set --metrics-token or --status-token (they share the listener)"
		}
		return usagef("--metrics-addr %s is reachable beyond loopback, and the metrics name every managed host: %s, "+
			"or listen on 127.0.0.1", o.MetricsAddr, fix)
	}
	if o.StatusAddr != "" && !loopbackAddr(o.StatusAddr) && o.statusToken() == "" {
		return usagef("--status-addr %s is reachable beyond loopback: set --status-token (or $CERTKEEPER_STATUS_TOKEN), "+
			"or listen on 127.0.0.1", o.StatusAddr)
	}
	return nil
}

// start opens the listeners and starts the alerter. st is the storage
// the status page and alerts read. The returned error names the flag
// whose address could not be used.
func (o *ops) start(m *certkeeper.Manager, st storage.Storage) error {
	if err := o.cfg.check(); err != nil {
		return err
	}
	var metricsHandler http.Handler
	if o.metrics != nil {
		if err := o.metrics.Register(m); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		metricsHandler = bearer(o.cfg.metricsToken(), o.metrics.Handler())
	}
	var status http.Handler
	if o.cfg.StatusAddr != "" {
		status = &statuspage.Handler{Storage: st, Events: &o.events, Token: o.cfg.statusToken(), Logger: o.env.Logger, Allowed: allowedBy(m)}
	}
	if o.cfg.shared() {
		mux := http.NewServeMux()
		mux.Handle("/metrics", metricsHandler)
		mux.Handle("/", status)
		if err := o.serve("metrics", o.cfg.MetricsAddr, "--metrics-addr and --status-addr", "metrics and status page", mux); err != nil {
			return err
		}
	} else {
		if metricsHandler != nil {
			mux := http.NewServeMux()
			mux.Handle("/metrics", metricsHandler)
			if err := o.serve("metrics", o.cfg.MetricsAddr, "--metrics-addr", "metrics", mux); err != nil {
				return err
			}
		}
		if status != nil {
			if err := o.serve("status", o.cfg.StatusAddr, "--status-addr", "status page", status); err != nil {
				return err
			}
		}
	}
	if o.alerter != nil {
		o.alerter.Storage = st
		ctx, cancel := context.WithCancel(context.Background())
		o.cancel, o.done = cancel, make(chan struct{})
		go func() {
			defer close(o.done)
			o.alerter.Run(ctx)
		}()
	}
	return nil
}

// bearer wraps h: with a token, a request must carry it as
// "Authorization: Bearer TOKEN" (compared in constant time) or get 401.
func bearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		given, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(given))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="certkeeper metrics"`)
			http.Error(w, "a bearer token is required (--metrics-token)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackAddr reports whether addr listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// serve serves h on the listener called name, on addr.
func (o *ops) serve(name, addr, flagName, what string, h http.Handler) error {
	listen := o.listen
	if listen == nil {
		listen = func(_, addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
	}
	ln, err := listen(name, addr)
	if err != nil {
		o.stop()
		return fmt.Errorf("listening on %s for the %s (change it with %s): %w", addr, what, flagName, err)
	}
	srv := &http.Server{Handler: nobody.Refuse(h), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(o.env.Logger.Handler(), slog.LevelDebug)}
	o.servers = append(o.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.env.Logger.Error("serving the "+what, slog.String("addr", addr), slog.Any("err", err))
		}
	}()
	o.env.Logger.Info(what+" listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// stop closes the listeners and stops the alerter.
func (o *ops) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range o.servers {
		_ = s.Shutdown(ctx)
	}
	o.servers = nil
	if o.cancel != nil {
		o.cancel()
		<-o.done
		o.cancel = nil
	}
}
