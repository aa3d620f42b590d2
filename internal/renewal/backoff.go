package renewal

import (
	"math/rand/v2"
	"time"
)

// Retry rules after a failed renewal (see Backoff).
const (
	// backoffDaily is the last step of Let's Encrypt's schedule: after
	// three failures, about once a day.
	backoffDaily = 24 * time.Hour

	// lapsedCap bounds the wait for a certificate that has already
	// expired: it is LE's third step. The daily step spares the CA from a
	// client that fails forever while its certificate still has time; once
	// the certificate has lapsed every hour of waiting is an hour of
	// outage after the cause is fixed, and the CA's own limits (5 failed
	// authorizations per name per hour, Retry-After) still apply.
	lapsedCap = 100 * time.Minute

	// leftDivisor: before expiry, no wait is longer than a quarter of the
	// time left, so at least three more attempts fit before NotAfter
	// whatever the lifetime.
	leftDivisor = 4

	// floorDivisor, minFloor, maxFloor: no wait is shorter than a
	// hundredth of the lifetime, clamped to [1s, 1m], before jitter. A
	// 60-second certificate may be retried every second in its last
	// seconds; a 90-day one no more often than LE's first step, a minute.
	floorDivisor = 100
	minFloor     = time.Second
	maxFloor     = time.Minute

	// jitterMin: waits are multiplied by a uniform factor in [0.8, 1.0).
	// The jitter only shortens, so the limits above stay limits.
	jitterMin = 0.8
)

// Backoff returns when to try renewing c again after its attempt-th
// consecutive failure (1 for the first), at now. retryAfter is the time
// the CA's Retry-After named, or zero.
//
// The rule, step by step, with L the lifetime and left = NotAfter - now:
//
//  1. The base wait follows Let's Encrypt's guidance: 1 min for attempt 1
//     (or less), 10 min for attempt 2, 100 min for attempt 3, 24 h from
//     attempt 4 on.
//  2. It is limited by the certificate: to left/4 while left > 0, so that
//     at least three more attempts fit before expiry (a 60-second
//     certificate failing with 30 s left waits 7.5 s, not a minute); once
//     it has lapsed, to L/4 or 100 min, whichever is less.
//  3. It is raised to a floor of L/100, clamped to [1s, 1m]. The floor
//     wins over step 2: in a certificate's last moments attempts come
//     every floor, never faster.
//  4. It is multiplied by a uniform random factor in [0.8, 1.0), so that
//     certificates failing together (a CA outage) do not retry together.
//     The jitter only shortens: the bounds of step 2 hold exactly, and the
//     shortest possible wait is 0.8 of the floor.
//  5. The attempt is at now plus that wait, or at retryAfter if that is
//     later: the CA's Retry-After is obeyed even if the certificate lapses
//     first, because asking sooner only earns another refusal. (The
//     Manager may try another CA of its fallback chain meanwhile.)
//
// A Cert with no usable lifetime (NotAfter not after NotBefore; the zero
// Cert when the Manager could not read the certificate) gets steps 1, 4 and
// 5 only.
//
// For example, failing from the due time on: a 60 s certificate (30 s left)
// waits 6-7.5 s, then about 4.5-6 s, shrinking to 0.8-1 s near expiry, and
// 12-15 s once lapsed; a 6-day one (72 h left) 48-60 s, 8-10 min, 80-100
// min, then 14.4-18 h (a quarter of what is left), shrinking to 48-60 s; a
// 90-day one (30 days left) 48-60 s, 8-10 min, 80-100 min, then daily
// (19.2-24 h) until fewer than 4 days are left, then shrinking likewise.
// Lapsed 6-day and 90-day certificates are retried every 80-100 min.
//
// rnd is as for Due.
func Backoff(attempt int, c Cert, now, retryAfter time.Time, rnd *rand.Rand) time.Time {
	var d time.Duration
	switch {
	case attempt <= 1:
		d = time.Minute
	case attempt == 2:
		d = 10 * time.Minute
	case attempt == 3:
		d = 100 * time.Minute
	default:
		d = backoffDaily
	}
	life := c.lifetime()
	if life > 0 {
		limit := min(life/leftDivisor, lapsedCap)
		if left := c.NotAfter.Sub(now); left > 0 {
			limit = left / leftDivisor
		}
		d = min(d, limit)
	}
	if life > 0 {
		d = max(d, min(max(life/floorDivisor, minFloor), maxFloor))
	}
	d = time.Duration(float64(d) * (jitterMin + (1-jitterMin)*float(rnd)))
	return later(now.Add(d), retryAfter)
}
