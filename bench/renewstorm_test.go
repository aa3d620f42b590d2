package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/internal/testca"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/acmeca"
	"github.com/certkeeper/certkeeper/solver"
	"github.com/certkeeper/certkeeper/solver/http01"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// TestRenewStorm is issue 16's restart after an outage: thousands of
// stored certificates all past their renewal time, and a Manager started
// with an order budget (what `--order-limit 20/1m` sets). It must renew
// them steadily, 10 to 20 a minute, not fire thousands of orders at once
// nor stall.
//
// Method: Pebble offers a "short" profile (12-minute certificates) and a
// long "default" one. CERTKEEPER_BENCH_STORM_N certificates (2,000) are
// issued under the short profile through certkeeper.Issue (http-01), each
// for its own name. When the last one is at 80 % of its lifetime (every
// one is past the lifetime rule's due time, half-life ± 5 %, and most are
// within Pebble's ARI window, which spans the whole lifetime), a fresh
// Manager opens the same storage with Cluster.OrderLimit 20 per minute
// and the default profile, as a restarted `certkeeper proxy` would, and
// the Renewed events are counted per minute for
// CERTKEEPER_BENCH_STORM_MINUTES (5) minutes
// (CERTKEEPER_BENCH_STORM_LIFETIME changes the 12 minutes, for a quick
// check of the bench itself). It takes about 16 minutes, so it runs only
// when asked:
//
//	CERTKEEPER_BENCH_STORM=1 go test ./bench -run RenewStorm -v -timeout 40m
func TestRenewStorm(t *testing.T) {
	if os.Getenv("CERTKEEPER_BENCH_STORM") != "1" {
		t.Skip("a benchmark of about 16 minutes: run it with CERTKEEPER_BENCH_STORM=1 go test ./bench -run RenewStorm -v -timeout 40m")
	}
	n := envInt(t, "CERTKEEPER_BENCH_STORM_N", 2000)
	minutes := envInt(t, "CERTKEEPER_BENCH_STORM_MINUTES", 5)
	lifetime := 12 * time.Minute
	if s := os.Getenv("CERTKEEPER_BENCH_STORM_LIFETIME"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < time.Minute {
			t.Fatalf("CERTKEEPER_BENCH_STORM_LIFETIME=%q: want a duration of at least 1m", s)
		}
		lifetime = d
	}
	const (
		limit       = 20
		window      = time.Minute
		parallelism = 16
	)
	ca := testca.Start(t, testca.Options{Profiles: map[string]testca.Profile{
		"short":   {Description: "short-lived", ValidityPeriod: lifetime},
		"default": {Description: "90 days", ValidityPeriod: 90 * 24 * time.Hour},
	}})
	dir := t.TempDir()
	st := filestore.New(dir)

	// Fill: n short certificates through the one issuance path.
	h01 := &http01.Solver{}
	srv, err := h01.Listen(net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.HTTPPort())))
	if err != nil {
		t.Fatal(err)
	}
	short := &acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), Storage: st, Profile: "short",
		Solvers: map[string]solver.Solver{acmeca.HTTP01: h01}, ChallengeOrder: []string{acmeca.HTTP01}}
	chain := &issuer.Chain{Issuers: []issuer.Issuer{short}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	if _, err := certkeeper.Issue(ctx, st, certkeeper.IssueRequest{Names: []string{"warmup.storm.test"}, Issuers: chain}); err != nil {
		t.Fatal(err) // the account, once
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, parallelism)
	for range parallelism {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				name := fmt.Sprintf("s%d.storm.test", i)
				if _, err := certkeeper.Issue(ctx, st, certkeeper.IssueRequest{Names: []string{name}, Issuers: chain}); err != nil {
					errs <- fmt.Errorf("issuing %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	srv.Close()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	filled := time.Now()
	t.Logf("issued %d certificates of %s in %s", n, lifetime, filled.Sub(start).Round(time.Millisecond))

	restart := filled.Add(lifetime * 8 / 10)
	t.Logf("waiting until %s (the last certificate at 80 %% of its lifetime)", restart.Format(time.TimeOnly))
	select {
	case <-time.After(time.Until(restart)):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}

	// The restart: a fresh Manager on the same storage, the budget of
	// --order-limit 20/1m, long certificates from now on.
	m := &certkeeper.Manager{
		Storage: st,
		Issuers: []issuer.Issuer{&acmeca.Issuer{DirectoryURL: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(),
			Profile: "default", ChallengeOrder: []string{acmeca.TLSALPN01}}},
		Cluster: certkeeper.Cluster{OrderLimit: limit, OrderWindow: window},
	}
	defer m.Close()
	listen(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.TLSPort())), m.TLSConfig())
	ordersBefore := ca.Orders()
	events, stop := m.Watch()
	defer stop()
	began := time.Now()
	counts := make([]int, minutes)
	failed := 0
	deadline := time.After(time.Duration(minutes) * window)
	for done := false; !done; {
		select {
		case e := <-events:
			i := int(time.Since(began) / window)
			switch {
			case i >= minutes:
			case e.Kind == certkeeper.Renewed:
				counts[i]++
			case e.Kind == certkeeper.RenewalFailed:
				failed++
				t.Logf("renewal failed: %v: %v", e.Names, e.Err)
			}
		case <-deadline:
			done = true
		}
	}
	t.Logf("renewals in each minute after the restart: %v (budget %d per %s; %d failed; %d orders at the CA)",
		counts, limit, window, failed, ca.Orders()-ordersBefore)
	for i, c := range counts {
		if c < limit/2 || c > limit {
			t.Errorf("%d renewals in minute %d, want between %d and %d", c, i+1, limit/2, limit)
		}
	}
}

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
