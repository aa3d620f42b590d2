package certkeeper_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/issuer"
	"github.com/certkeeper/certkeeper/issuer/localca"
	"github.com/certkeeper/certkeeper/status"
	"github.com/certkeeper/certkeeper/storage/filestore"
)

// failIssues is an issuer whose first n issuances fail, as a CA that is
// down would; then it is the issuer it wraps. (A storage refusing the
// certificate no longer fails an issuance: the certificate is served from
// memory and stored later, TestIssuedNotStored.)
type failIssues struct {
	issuer.Issuer
	mu sync.Mutex
	n  int // failures left; guarded by mu
}

func (f *failIssues) Issue(ctx context.Context, req issuer.Request) (*issuer.Certificate, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("CA unavailable")
	}
	return f.Issuer.Issue(ctx, req)
}

// TestManagerKeep: Keep retries a failing issuance with backoff (a
// minute, then ten) until it succeeds, logging each failure, and returns
// once the certificate is ready; with ctx ended it stops retrying. The
// bubble's clock makes the waits instant.
func TestManagerKeep(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := filestore.New(dir)
		ca := &failIssues{Issuer: &localca.CA{Storage: st}, n: 2}
		var logs bytes.Buffer
		m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{ca},
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		defer m.Close()
		start := time.Now()
		if err := m.Keep(t.Context(), "keep.test"); err != nil {
			t.Fatalf("Keep = %v, want nil", err)
		}
		if waited := time.Since(start); waited < 8*time.Minute || waited > 12*time.Minute {
			t.Errorf("Keep succeeded after %s, want two retries about 1 and 10 minutes apart", waited)
		}
		if n := strings.Count(logs.String(), "obtaining a managed certificate failed"); n != 2 {
			t.Errorf("logged %d failures, want 2:\n%s", n, logs.String())
		}
		if !strings.Contains(logs.String(), "managed certificate ready") {
			t.Errorf("no \"managed certificate ready\" log:\n%s", logs.String())
		}
		if _, ok := m.Cached("keep.test"); !ok {
			t.Error("keep.test not in memory after Keep returned")
		}

		ca.mu.Lock()
		ca.n = 1 << 30
		ca.mu.Unlock()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
		defer cancel()
		if err := m.Keep(ctx, "never.test"); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Keep with a failing storage = %v, want the context's deadline", err)
		}
		// Status shows Keep's own next attempt, not "at a handshake".
		certs, err := status.Read(t.Context(), st, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range certs {
			if c.Key != status.FailingKey("never.test", "") {
				continue
			}
			found = true
			if !c.FirstIssue || c.NextRenewal.IsZero() || !strings.Contains(c.RetryNote(time.Now(), time.Time.String), "next attempt") {
				t.Errorf("status of the kept name = %+v, want a first issuance with its next attempt", c)
			}
		}
		if !found {
			t.Errorf("status lacks never.test's failing first issuance: %+v", certs)
		}
	})
}

// TestManagerKeepStops: Keep does not retry what no retry mends. Closing
// the Manager ends a Keep waiting for its next attempt with ErrClosed (a
// Keep started with context.Background() would otherwise retry, and log a
// warning, daily for ever), a Keep after Close returns ErrClosed at once,
// and an invalid name is returned, not retried.
func TestManagerKeepStops(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st := filestore.New(dir)
		var logs lockedWriter // certfiles_test.go
		m := &certkeeper.Manager{Storage: st, Issuers: []issuer.Issuer{&failIssues{Issuer: &localca.CA{Storage: st}, n: 1 << 30}},
			Logger: slog.New(slog.NewTextHandler(&logs, nil))}

		start := time.Now()
		if err := m.Keep(context.Background(), "bad..name.test"); err == nil || logs.count("will retry") > 0 {
			t.Errorf("Keep of an invalid name = %v (%d retries logged), want its error at once, no retry", err, logs.count("will retry"))
		}
		done := make(chan error, 1)
		go func() { done <- m.Keep(context.Background(), "closed.test") }()
		time.Sleep(2 * time.Minute) // one failure, waiting for the second attempt
		m.Close()
		synctest.Wait()
		select {
		case err := <-done:
			if !errors.Is(err, certkeeper.ErrClosed) {
				t.Errorf("Keep after Close = %v, want ErrClosed", err)
			}
		default:
			t.Fatal("Keep still running after Close")
		}
		if err := m.Keep(context.Background(), "after.test"); !errors.Is(err, certkeeper.ErrClosed) {
			t.Errorf("Keep on a closed Manager = %v, want ErrClosed", err)
		}
		if waited := time.Since(start); waited > 3*time.Minute {
			t.Errorf("took %s", waited)
		}
	})
}
