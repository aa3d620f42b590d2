package certdeploy

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/certkeeper/certkeeper"
	"github.com/certkeeper/certkeeper/storage"
)

// deployTimeout bounds one deployment of Follow: reading storage, writing
// the files and running Check and Reload.
const deployTimeout = 5 * time.Minute

// The waits of Follow between retries of a failed deployment: a minute,
// doubling up to an hour.
const (
	retryFirst = time.Minute
	retryMax   = time.Hour
)

// Follow keeps Dir up to date with a running Manager: it deploys every
// certificate in st (the Manager's storage) now, and again after each
// issuance and renewal m reports, until ctx ends or stop is called; stop
// waits for a deployment under way. Events that arrive during a
// deployment are handled by one more, not one each. A failed deployment
// (a check that rejects the files, a reload that fails) is logged at Error
// with the time of its retry, and the previous files keep serving: it is
// tried again after a minute, then after waits doubling up to an hour,
// until it succeeds; a newer certificate is deployed at once and starts
// the waits again.
func (d *Deployer) Follow(ctx context.Context, m *certkeeper.Manager, st storage.Storage) (stop func()) {
	events, unwatch := m.Watch()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := &retrier{d: d}
		defer r.stop()
		r.deploy(ctx, st, true)
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.due:
				r.deploy(ctx, st, false)
			case e, ok := <-events:
				if !ok {
					return
				}
				if e.Kind != certkeeper.Obtained && e.Kind != certkeeper.Renewed {
					continue
				}
				for drained := false; !drained; {
					select {
					case <-events:
					default:
						drained = true
					}
				}
				r.deploy(ctx, st, true)
			}
		}
	}()
	return func() {
		cancel()
		unwatch()
		<-done
	}
}

// retrier is Follow's schedule of retries of a failed deployment.
type retrier struct {
	d     *Deployer
	timer *time.Timer
	due   <-chan time.Time // fires when a retry is due; nil: none is
	wait  time.Duration    // the last wait before a retry; 0 after a success
}

// deploy deploys what st holds and, if that fails, logs it and schedules
// the retry: after the first wait if fresh (a new certificate) or after
// a success, else after twice the last wait, at most the cap.
func (r *retrier) deploy(ctx context.Context, st storage.Storage, fresh bool) {
	r.stop()
	err := r.d.deployStored(ctx, st)
	if err == nil || ctx.Err() != nil {
		r.wait = 0
		return
	}
	if fresh || r.wait == 0 {
		r.wait = cmp.Or(r.d.retryFirst, retryFirst)
	} else {
		r.wait = min(2*r.wait, cmp.Or(r.d.retryMax, retryMax))
	}
	r.timer = time.NewTimer(r.wait)
	r.due = r.timer.C
	// err says which files stay: the ones deployed before (the check
	// refused the new ones) or the new ones (their reload failed).
	r.d.logger().Error("deploying certificates failed; it will be retried",
		slog.String("dir", r.d.Dir), slog.Any("err", err), slog.Time("retry_at", time.Now().Add(r.wait).Round(time.Second)))
}

// stop cancels a retry that is due.
func (r *retrier) stop() {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.due = nil
}

// deployStored deploys the certificates in st.
func (d *Deployer) deployStored(ctx context.Context, st storage.Storage) error {
	ctx, cancel := context.WithTimeout(ctx, deployTimeout)
	defer cancel()
	certs, err := Stored(ctx, st, nil)
	if err == nil && len(certs) > 0 {
		_, err = d.Deploy(ctx, certs)
	}
	return err
}
