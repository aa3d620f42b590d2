package testca

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// TestConcurrentOrdersAndPolls: one account placing orders from several
// goroutines while polling their authorizations, as a cluster of
// certkeeper nodes does, never finds Pebble stuck. Unpatched Pebble
// v2.10.1 deadlocks here: its Authz handler holds an authorization's
// write lock while it takes the store's read lock, and FindValidAuthorization
// (run by every new order) holds the store's read lock while it takes each
// authorization's read lock; once a writer of the store waits between them,
// no request that touches the store is answered again (pebblePatch).
func TestConcurrentOrdersAndPolls(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	client := &acme.Client{Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	acct, err := client.NewAccount(t.Context(), acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("NewAccount: %v", err)
	}
	const workers, orders, polls = 32, 20, 3
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range orders {
				order, err := client.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{{Type: "dns", Value: fmt.Sprintf("w%d-%d.deadlock.test", w, i)}}})
				if err != nil {
					errs <- fmt.Errorf("worker %d, order %d: %w", w, i, err)
					return
				}
				for range polls {
					if _, err := client.GetAuthorization(ctx, acct, order.Authorizations[0]); err != nil {
						errs <- fmt.Errorf("worker %d, order %d, polling: %w", w, i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d orders and %d authorization polls from %d goroutines: %s", workers*orders, workers*orders*polls, workers, time.Since(start).Round(time.Millisecond))
}
