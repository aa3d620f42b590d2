package stapling

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/certkeeper/certkeeper/internal/renewal"
	"golang.org/x/crypto/ocsp"
)

// Retry timing after a failed fetch: the first retry comes soon (a
// responder often learns of a new certificate a little after it is
// issued), then the wait doubles up to an hour.
const (
	retryFirst = 5 * time.Second
	retryMax   = time.Hour
	runTimeout = 30 * time.Second
)

// Keeper keeps the staples of the certificates in use fresh, in the
// background: one timer heap for all of them, no goroutine per
// certificate. Its Stapler fields say where staples are fetched and
// stored. The zero value is ready to use; Close stops it. Its fields must
// not change after first use.
type Keeper struct {
	Stapler

	// Logger receives the Keeper's logs: Warn when a staple cannot be
	// refreshed, Error when a certificate is revoked or a must-staple
	// certificate has no good staple. Nil means slog.Default().
	Logger *slog.Logger

	once   sync.Once
	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	sched  *renewal.Scheduler

	mu   sync.Mutex       // guards kept
	kept map[string]*kept // fingerprint → certificate being kept
}

// kept is one certificate whose staple a Keeper refreshes. Its fields
// other than set are written only by the scheduler's run for its key,
// which never runs twice at once.
type kept struct {
	leaf, issuer *x509.Certificate
	set          func(der []byte) bool
	revoked      func(*StatusError) // KeepRevoked's, or nil
	attempt      int
	current      []byte // the staple last given to set
}

func (k *Keeper) init() {
	k.once.Do(func() {
		k.ctx, k.cancel = context.WithCancel(context.Background())
		k.kept = make(map[string]*kept)
		k.sched = renewal.New(k.run, 0)
	})
}

func (k *Keeper) logger() *slog.Logger {
	if k.Logger != nil {
		return k.Logger
	}
	return slog.Default()
}

// Keep starts keeping a staple for leaf, issued by issuer: a staple is
// fetched (or loaded from storage) at once in the background, then
// refreshed at half its validity. set is called from the Keeper's
// goroutines with every new verified good staple, and with nil when the
// current one has expired or the certificate turns out revoked or
// unknown; it returns false once the certificate is no longer served,
// which ends the keeping. A leaf without an OCSP responder is ignored at
// the cost of one check; so is a nil issuer. Keeping a leaf already kept
// replaces its set.
func (k *Keeper) Keep(leaf, issuer *x509.Certificate, set func(der []byte) bool) {
	k.KeepRevoked(leaf, issuer, set, nil)
}

// KeepRevoked is Keep, and calls revoked (from the Keeper's goroutines)
// at each verified response saying that leaf is revoked, as long as it is
// kept: its owner replaces it, since clients that check refuse it.
func (k *Keeper) KeepRevoked(leaf, issuer *x509.Certificate, set func(der []byte) bool, revoked func(*StatusError)) {
	if !HasOCSP(leaf) || issuer == nil {
		return
	}
	k.init()
	if k.ctx.Err() != nil {
		return
	}
	fp := Fingerprint(leaf)
	k.mu.Lock()
	e := k.kept[fp]
	if e == nil {
		e = &kept{leaf: leaf, issuer: issuer}
		k.kept[fp] = e
	}
	e.set, e.revoked = set, revoked
	k.mu.Unlock()
	k.sched.Schedule(fp, time.Now())
}

// Close stops refreshing staples and waits for fetches in progress. The
// staples already set stay where they were set.
func (k *Keeper) Close() {
	k.init()
	k.cancel()
	k.sched.Close()
}

// run is the scheduler's callback for one certificate.
func (k *Keeper) run(fp string) {
	k.mu.Lock()
	e := k.kept[fp]
	var set func([]byte) bool
	var revoked func(*StatusError)
	if e != nil {
		set, revoked = e.set, e.revoked
	}
	k.mu.Unlock()
	if e == nil {
		return
	}
	ctx, cancel := context.WithTimeout(k.ctx, runTimeout)
	defer cancel()
	r, err := k.Staple(ctx, e.leaf, e.issuer)
	if k.ctx.Err() != nil {
		return
	}
	now := time.Now()
	var der []byte
	var next time.Time
	if r != nil && (err == nil || now.Before(expiry(r))) {
		der = r.Raw
		next = RefreshAt(r, now)
	}
	if err != nil {
		e.attempt++
		retry := now.Add(backoff(e.attempt))
		if next.IsZero() || retry.Before(next) {
			next = retry
		}
		if r != nil && next.After(expiry(r)) {
			next = expiry(r)
		}
		k.report(e, err, der != nil, next)
		if se, ok := errors.AsType[*StatusError](err); ok && se.Status == ocsp.Revoked && revoked != nil {
			revoked(se)
		}
	} else {
		e.attempt = 0
	}
	// set also tells whether the certificate is still served, so it is
	// called on every run; it must be cheap when the staple is unchanged.
	if !set(der) {
		k.forget(fp, e)
		return
	}
	if der != nil && !bytes.Equal(der, e.current) {
		k.logger().Debug("OCSP staple set", slog.Any("certificate", logValue(e.leaf)), slog.Time("next_update", r.NextUpdate))
	}
	e.current = der
	k.sched.Schedule(fp, next)
}

// report logs a failed refresh at the level an operator needs.
func (k *Keeper) report(e *kept, err error, stillStapled bool, next time.Time) {
	attrs := []any{slog.Any("certificate", logValue(e.leaf)), slog.Int("attempt", e.attempt),
		slog.Time("retry_at", next), slog.Any("err", err)}
	var se *StatusError
	switch {
	case errors.As(err, &se) && se.Status == ocsp.Revoked:
		k.logger().Error("certificate is revoked according to its OCSP responder; not stapling", attrs...)
	case !stillStapled && MustStaple(e.leaf):
		k.logger().Error("MUST-STAPLE certificate has no valid OCSP staple: clients will refuse it until one is fetched", attrs...)
	case stillStapled:
		k.logger().Warn("OCSP staple not refreshed; the current one is still valid", attrs...)
	default:
		k.logger().Warn("no OCSP staple for certificate", attrs...)
	}
}

// forget stops keeping e, unless Keep has replaced it meanwhile.
func (k *Keeper) forget(fp string, e *kept) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kept[fp] == e {
		delete(k.kept, fp)
	}
}

// backoff is the wait before retry number attempt (from 1): 5 s doubling
// to an hour, with ±10% jitter so a fleet does not retry in step.
func backoff(attempt int) time.Duration {
	d := retryFirst
	for i := 1; i < attempt && d < retryMax; i++ {
		d *= 2
	}
	d = min(d, retryMax)
	return d + time.Duration((rand.Float64()*0.2-0.1)*float64(d))
}
