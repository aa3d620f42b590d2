package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/metrics"
	"github.com/certkeeper/certkeeper/storage"
)

// opsConfig holds the operations flags a long-running front-end (proxy,
// server) shares: metrics, the status page and alerts. Its keys sit in
// the front-end's config file beside its own.
type opsConfig struct {
	MetricsAddr string `yaml:"metrics_addr"`
}

func (o *opsConfig) register(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "`ADDR` to serve Prometheus metrics on, at /metrics (e.g. 127.0.0.1:9100); off unless given")
}

// overlay lays the flags that were set on top of o.
func (o *opsConfig) overlay(flags *opsConfig, set map[string]bool) {
	if set["metrics-addr"] {
		o.MetricsAddr = flags.MetricsAddr
	}
}

// ops runs the operations side of a front-end: metrics, status page,
// alerts. Build it before the Manager (it wraps the storage and takes the
// events), then start it.
type ops struct {
	cfg     opsConfig
	env     *Env
	metrics *metrics.Metrics
	servers []*http.Server
}

func newOps(cfg opsConfig, env *Env) *ops {
	o := &ops{cfg: cfg, env: env}
	if cfg.MetricsAddr != "" {
		o.metrics = metrics.New()
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
}

// start opens the listeners. The returned error names the flag whose
// address could not be used.
func (o *ops) start(m *certkeeper.Manager) error {
	if o.metrics != nil {
		if err := o.metrics.Register(m); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", o.metrics.Handler())
		if err := o.serve(o.cfg.MetricsAddr, "--metrics-addr", "metrics", mux); err != nil {
			return err
		}
	}
	return nil
}

func (o *ops) serve(addr, flagName, what string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		o.stop()
		return fmt.Errorf("listening on %s for %s (change it with %s): %w", addr, what, flagName, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	o.servers = append(o.servers, srv)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.env.Logger.Error("serving "+what, slog.String("addr", addr), slog.Any("err", err))
		}
	}()
	o.env.Logger.Info(what+" listening", slog.String("addr", ln.Addr().String()))
	return nil
}

// stop closes the listeners.
func (o *ops) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range o.servers {
		_ = s.Shutdown(ctx)
	}
	o.servers = nil
}
