package main

import (
	"context"
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
	StatusAddr     string        `yaml:"status_addr"`
	StatusToken    string        `yaml:"status_token"`
	AlertWebhook   string        `yaml:"alert_webhook"`
	AlertExec      string        `yaml:"alert_exec"`
	AlertFailing   time.Duration `yaml:"alert_failing_for"`
	AlertExpiring  time.Duration `yaml:"alert_expiring_within"`
	AlertCheckEach time.Duration `yaml:"alert_check_every"`
}

func (o *opsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "`ADDR` to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9100); off unless given")
	fs.StringVar(&o.StatusAddr, "status-addr", "", "`ADDR` to serve the status page on (/ and /status.json), e.g. 127.0.0.1:9101; off unless\ngiven; beyond loopback it needs --status-token")
	fs.StringVar(&o.StatusToken, "status-token", "", "`TOKEN` the status page asks for (?token= or a bearer token); default $CERTKEEPER_STATUS_TOKEN")
	fs.StringVar(&o.AlertWebhook, "alert-webhook", "", "`URL` to POST a JSON alert to when a renewal keeps failing or a certificate nears expiry")
	fs.StringVar(&o.AlertExec, "alert-exec", "", "`COMMAND` to run (with the shell) for each alert; $CERTKEEPER_ALERT_JSON holds the alert")
	fs.DurationVar(&o.AlertFailing, "alert-failing-for", alert.DefaultFailingFor, "alert when renewals have failed for this `DURATION`")
	fs.DurationVar(&o.AlertExpiring, "alert-expiring-within", alert.DefaultExpiringWithin, "alert when a certificate expires within this `DURATION`")
	fs.DurationVar(&o.AlertCheckEach, "alert-check-every", alert.DefaultEvery, "check the certificates for alerts this often (`DURATION`)")
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
				return runHook(ctx, cmd, []string{"CERTKEEPER_ALERT_JSON=" + string(payload),
					"CERTKEEPER_ALERT_REASON=" + a.Reason, "CERTKEEPER_ALERT_MESSAGE=" + a.Message,
					"CERTKEEPER_NAMES=" + strings.Join(a.Names, " ")})
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

// start opens the listeners and starts the alerter. st is the storage
// the status page and alerts read. The returned error names the flag
// whose address could not be used.
func (o *ops) start(m *certkeeper.Manager, st storage.Storage) error {
	if o.metrics != nil {
		if err := o.metrics.Register(m); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", o.metrics.Handler())
		if err := o.serve("metrics", o.cfg.MetricsAddr, "--metrics-addr", "metrics", mux); err != nil {
			return err
		}
	}
	if o.cfg.StatusAddr != "" {
		token := o.cfg.StatusToken
		if token == "" {
			token = os.Getenv("CERTKEEPER_STATUS_TOKEN")
		}
		if token == "" && !loopbackAddr(o.cfg.StatusAddr) {
			o.stop()
			return usagef("--status-addr %s is reachable beyond loopback: set --status-token (or $CERTKEEPER_STATUS_TOKEN), "+
				"or listen on 127.0.0.1", o.cfg.StatusAddr)
		}
		h := &statuspage.Handler{Storage: st, Events: &o.events, Token: token, Logger: o.env.Logger}
		if err := o.serve("status", o.cfg.StatusAddr, "--status-addr", "status page", h); err != nil {
			return err
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
