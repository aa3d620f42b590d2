package metrics_test

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper/internal/connlimit"
	"github.com/certkeeper/certkeeper/internal/proxyprotocol"
	"github.com/certkeeper/certkeeper/metrics"
)

// TestConnectionsRefused: connections over a real listener's limits
// (max_conns, max_conns_per_client, as the proxy and the server wrap
// theirs) are counted by listener and reason on the metrics endpoint of
// the Metrics their Refusals is registered with, each listener's series
// there at 0 before the first refusal; another Metrics, with a Refusals of
// its own, counts none of them.
func TestConnectionsRefused(t *testing.T) {
	refusals := new(connlimit.Refusals)
	x, other := metrics.New(), metrics.New()
	if err := x.RegisterRefusals(refusals); err != nil {
		t.Fatal(err)
	}
	if err := other.RegisterRefusals(new(connlimit.Refusals)); err != nil {
		t.Fatal(err)
	}
	scrape, scrapeOther := httptest.NewServer(x.Handler()), httptest.NewServer(other.Handler())
	defer scrape.Close()
	defer scrapeOther.Close()
	get := func(srv ...*httptest.Server) string {
		t.Helper()
		url := scrape.URL
		if len(srv) > 0 {
			url = srv[0].URL
		}
		return scrapeText(t, url)
	}
	logger := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		reason string
		limits connlimit.Limits
	}{
		{"per_client", connlimit.Limits{Max: 10, PerClient: 2, Refusals: refusals}},
		{"max_conns", connlimit.Limits{Max: 2, PerClient: -1, Refusals: refusals}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(proxyprotocol.ListenLimited(raw, tc.limits, nil, logger))
			defer srv.Close()
			series := fmt.Sprintf("certkeeper_connections_refused_total{listener=%q,reason=%q}", raw.Addr().String(), tc.reason)
			if body := get(); !strings.Contains(body, series+" 0") {
				t.Errorf("before any refusal, /metrics has no %s 0", series)
			}
			// Two connections are admitted and held; the next three are
			// over the limit, reset at accept (or while dialling).
			for i := range 5 {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil && i < 2 {
					t.Fatal(err)
				}
				if err == nil {
					defer c.Close()
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(get(), series+" 3") {
				if time.Now().After(deadline) {
					t.Fatalf("/metrics has no %s 3 within 10 s of 5 connections to a limit of 2:\n%s", series, grep(get(), "refused"))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if body := get(scrapeOther); strings.Contains(body, raw.Addr().String()) {
				t.Errorf("another Metrics counts this listener's refusals:\n%s", grep(body, "refused"))
			}
		})
	}
}

// grep is the lines of s that hold sub.
func grep(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
