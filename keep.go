package certkeeper

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/certkeeper/certkeeper/hostname"
	"github.com/certkeeper/certkeeper/internal/renewal"
	"github.com/certkeeper/certkeeper/issuer"
)

// Keep is Cert for a certificate that must exist whatever happens: it
// calls Cert for names and, while that fails (the CA down, a name not
// yet pointing at this host, a rate limit), retries with the renewal
// loop's backoff (about 1 minute, 10 minutes, 100 minutes, then daily,
// each with jitter, and never before the CA's Retry-After) until Cert
// succeeds or ctx ends. From then on the Manager renews the certificate
// like any other.
//
// Keep blocks: run it in a goroutine of its own for each certificate.
// It returns nil once the certificate is ready, ctx's error when ctx
// ends, ErrClosed when the Manager is closed (at once, even while it
// waits for its next attempt), and without retrying the errors no retry
// can mend: the Manager's configuration error (as Start returns it), no
// names, or an invalid name (a *hostname.NameError). Every other failure
// is logged at Warn with the attempt number and the time of the next
// one; nothing is returned for it, since nobody is left to act on it but
// the operator. certkeeper server --managed runs one Keep per --managed
// flag.
func (m *Manager) Keep(ctx context.Context, names ...string) error {
	if err := m.init(); err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err := m.Cert(ctx, names...)
		if err == nil {
			m.logger().Info("managed certificate ready", slog.Any("names", names))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if m.ctx.Err() != nil {
			return ErrClosed
		}
		if _, invalid := errors.AsType[*hostname.NameError](err); invalid || len(names) == 0 {
			return err
		}
		var retryAfter time.Time
		if ierr, ok := errors.AsType[*issuer.Error](err); ok {
			retryAfter = ierr.RetryAfter
		}
		next := renewal.Backoff(attempt, renewal.Cert{}, time.Now(), retryAfter, nil)
		m.noteKeptRetry(ctx, names[0], next) // status shows when Keep tries again
		m.logger().Warn("obtaining a managed certificate failed; will retry", slog.Any("names", names),
			slog.Int("attempt", attempt), slog.Time("retry_at", next), slog.Any("err", err))
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-m.ctx.Done():
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}
