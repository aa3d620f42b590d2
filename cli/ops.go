package cli

import (
	"errors"
	"net"
	"time"

	"github.com/certkeeper/certkeeper/alert"
	"github.com/certkeeper/certkeeper/certserver"
	"github.com/certkeeper/certkeeper/internal/cmdline"
	"github.com/certkeeper/certkeeper/monitor"
)

// opsConfig holds the operations flags a long-running front-end (proxy,
// server) shares: metrics, the status page and alerts. Its keys sit in
// the front-end's config file beside its own.
type opsConfig struct {
	MetricsAddr    string        `yaml:"metrics_addr" arg:"ADDR" help:"ADDR to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9100), and /healthz; off\nunless given; beyond loopback it needs --metrics-token (the metrics name every managed host)"`
	MetricsToken   string        `yaml:"metrics_token" secret:"true" arg:"TOKEN" help:"TOKEN /metrics asks for as a bearer token (default: --status-token when --metrics-addr\nis --status-addr)"`
	StatusAddr     string        `yaml:"status_addr" arg:"ADDR" help:"ADDR to serve the status page on (/ and /status.json, and /healthz), e.g. 127.0.0.1:9101;\noff unless given; beyond loopback it needs --status-token"`
	StatusToken    string        `yaml:"status_token" secret:"true" arg:"TOKEN" help:"TOKEN the status page asks for (?token= or a bearer token)"`
	AlertWebhook   string        `yaml:"alert_webhook" secret:"true" arg:"URL" help:"URL to POST a JSON alert to when a renewal or a first issuance keeps failing or a certificate\nnears expiry, and a \"resolved\" one when that is over"`
	AlertExec      string        `yaml:"alert_exec" arg:"COMMAND" help:"COMMAND to run (with the shell) for each alert; $CERTKEEPER_ALERT_JSON holds the alert"`
	AlertFailing   time.Duration `yaml:"alert_failing_for" arg:"DURATION" help:"alert when renewals (or a name's first issuance) have failed for this DURATION"`
	AlertExpiring  time.Duration `yaml:"alert_expiring_within" arg:"DURATION" help:"alert when a certificate expires within this DURATION, or a sixth of its lifetime if\nshorter, and its renewal is not planned ahead (nothing failed, its time not passed)"`
	AlertCheckEach time.Duration `yaml:"alert_check_every" arg:"DURATION" help:"check the certificates for alerts this often (DURATION)"`
}

// defaultOps is the operations flags' defaults: package alert's.
func defaultOps() opsConfig {
	return opsConfig{AlertFailing: alert.DefaultFailingFor, AlertExpiring: alert.DefaultExpiringWithin, AlertCheckEach: alert.DefaultEvery}
}

// monitor is the monitor.Config the flags describe, with listen to open
// the listeners and api, the server's API whose requests the metrics count.
func (o *opsConfig) monitor(env *Env, listen func(name, addr string) (net.Listener, error), api *certserver.Handler) monitor.Config {
	c := monitor.Config{MetricsAddr: o.MetricsAddr, MetricsToken: o.MetricsToken, StatusAddr: o.StatusAddr,
		StatusToken: o.StatusToken, Listen: listen, API: api}
	if env != nil {
		c.Logger = env.Logger
	}
	if o.AlertWebhook != "" || o.AlertExec != "" {
		c.Alerter = &alert.Alerter{
			Webhook: o.AlertWebhook, FailingFor: o.AlertFailing, ExpiringWithin: o.AlertExpiring,
			Every: o.AlertCheckEach, Logger: c.Logger,
		}
		if o.AlertExec != "" {
			c.Alerter.Exec = alert.Command(o.AlertExec)
		}
	}
	return c
}

// shared reports whether metrics and the status page share one listener.
func (o *opsConfig) shared() bool {
	return (&monitor.Config{MetricsAddr: o.MetricsAddr, StatusAddr: o.StatusAddr}).Shared()
}

// check refuses, before anything listens, an ops listen address that is
// not one (cmdline.CheckListenAddrs, each alone: metrics and the status
// page may share one listener), or an ops listener reachable beyond
// loopback without a token (monitor.Config.Check), naming the flags that
// fix it.
func (o *opsConfig) check() error {
	if err := errors.Join(cmdline.CheckListenAddrs("--metrics-addr", o.MetricsAddr), cmdline.CheckListenAddrs("--status-addr", o.StatusAddr)); err != nil {
		return err
	}
	if err := alert.CheckWebhook(o.AlertWebhook); err != nil {
		return usagef("--alert-webhook: %v", err)
	}
	c := o.monitor(nil, nil, nil)
	return opsFlagError(c.Check())
}

// opsFlagError says err, from package monitor, in terms of the flags.
func opsFlagError(err error) error {
	var exposed *monitor.ExposedError
	var lerr *monitor.ListenError
	switch {
	case errors.As(err, &exposed) && exposed.Listener == "metrics":
		fix := "set --metrics-token (or $CERTKEEPER_METRICS_TOKEN)"
		if exposed.Shared {
			fix = "set --metrics-token or --status-token (they share the listener)"
		}
		return usagef("--metrics-addr %s is reachable beyond loopback, and the metrics name every managed host: %s, "+
			"or listen on 127.0.0.1", exposed.Addr, fix)
	case errors.As(err, &exposed):
		return usagef("--status-addr %s is reachable beyond loopback: set --status-token (or $CERTKEEPER_STATUS_TOKEN), "+
			"or listen on 127.0.0.1", exposed.Addr)
	case errors.As(err, &lerr):
		flagName := "--" + lerr.Listener + "-addr"
		if lerr.Shared {
			flagName = "--metrics-addr and --status-addr"
		}
		return cmdline.ListenError(lerr.Err, lerr.Addr, flagName, "the "+lerr.What)
	}
	return err
}
