package certdeploy

import (
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
		var (
			retry   *time.Timer
			retryC  <-chan time.Time // nil: no retry due
			wait    time.Duration    // the last wait before a retry
			attempt = func(fresh bool) {
				if retry != nil {
					retry.Stop()
				}
				retryC = nil
				err := d.deployStored(ctx, st)
				if err == nil || ctx.Err() != nil {
					wait = 0
					return
				}
				if fresh || wait == 0 {
					wait = d.firstWait()
				} else {
					wait = min(2*wait, d.maxWait())
				}
				retry = time.NewTimer(wait)
				retryC = retry.C
				d.logger().Error("deploying certificates failed; the previous files stay, and it will be retried",
					slog.String("dir", d.Dir), slog.Any("err", err),
					slog.Time("retry_at", time.Now().Add(wait).Round(time.Second)))
			}
		)
		defer func() {
			if retry != nil {
				retry.Stop()
			}
		}()
		attempt(true)
		for {
			select {
			case <-ctx.Done():
				return
			case <-retryC:
				attempt(false)
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
				attempt(true)
			}
		}
	}()
	return func() {
		cancel()
		unwatch()
		<-done
	}
}

func (d *Deployer) firstWait() time.Duration {
	if d.retryFirst > 0 {
		return d.retryFirst
	}
	return retryFirst
}

func (d *Deployer) maxWait() time.Duration {
	if d.retryMax > 0 {
		return d.retryMax
	}
	return retryMax
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
