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

// Follow keeps Dir up to date with a running Manager: it deploys every
// certificate in st (the Manager's storage) now, and again after each
// issuance and renewal m reports, until ctx ends or stop is called; stop
// waits for a deployment under way. Events that arrive during a
// deployment are handled by one more, not one each. A failed deployment
// is logged at Error and the previous files keep serving: there is no
// caller left to return it to.
func (d *Deployer) Follow(ctx context.Context, m *certkeeper.Manager, st storage.Storage) (stop func()) {
	events, unwatch := m.Watch()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.deployStored(ctx, st)
		for {
			select {
			case <-ctx.Done():
				return
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
				d.deployStored(ctx, st)
			}
		}
	}()
	return func() {
		cancel()
		unwatch()
		<-done
	}
}

// deployStored deploys the certificates in st, logging a failure.
func (d *Deployer) deployStored(ctx context.Context, st storage.Storage) {
	ctx, cancel := context.WithTimeout(ctx, deployTimeout)
	defer cancel()
	certs, err := Stored(ctx, st, nil)
	if err == nil && len(certs) > 0 {
		_, err = d.Deploy(ctx, certs)
	}
	if err != nil {
		d.logger().Error("deploying certificates failed; the previous files stay", slog.String("dir", d.Dir), slog.Any("err", err))
	}
}
