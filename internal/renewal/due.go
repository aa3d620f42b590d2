package renewal

import (
	"crypto/sha256"
	"encoding/binary"
	"math/big"
	"math/rand/v2"
	"time"

	"github.com/certkeeper/certkeeper/storage"
)

// Timing rules, all fractions of the lifetime L = NotAfter - NotBefore
// except the ARI check intervals, which RFC 9773 and Let's Encrypt state in
// absolute terms.
const (
	// marginDivisor sets the safety margin, L/10: no renewal is planned
	// later than this before expiry, leaving room for retries (Backoff).
	marginDivisor = 10

	// shortLifetime is the lifetime under which the fallback rule renews
	// at half the lifetime instead of two thirds (integration guide, "When
	// to Renew": "1/2 for certificates shorter than 10 days").
	shortLifetime = 10 * 24 * time.Hour

	// spreadDivisor sets the jitter of the fallback rule: due times are
	// spread uniformly over ± L/20 around the nominal point.
	spreadDivisor = 20

	// ariMaxInterval: Let's Encrypt asks for ARI to be checked at least
	// twice a day.
	ariMaxInterval = 12 * time.Hour

	// ariJitter: without a Retry-After, the next ARI check is spread over
	// the last hour before ariMaxInterval, so that certificates loaded
	// together (at start-up) are not checked together forever after.
	ariJitter = time.Hour

	// ariMinInterval: RFC 9773 §4.3.2 suggests treating Retry-After values
	// under one minute as one minute.
	ariMinInterval = time.Minute
)

// Window is a renewal window suggested by a CA through ACME Renewal
// Information (RFC 9773 §4.2): the CA asks for the certificate to be
// renewed at some time in [Start, End]. The zero Window means the CA offered
// none.
type Window struct {
	Start, End time.Time
}

// Valid reports whether w can be used: Start is set and End is later than
// Start, as RFC 9773 §4.2 requires. Due ignores a Window that is not valid,
// the zero Window included, and falls back to the lifetime rule.
func (w Window) Valid() bool {
	return !w.Start.IsZero() && w.End.After(w.Start)
}

// Stored is the window a certificate's record keeps (its
// renewal_window), or the zero Window when it keeps none.
func Stored(w *storage.Window) Window {
	if w == nil {
		return Window{}
	}
	return Window{Start: w.Start, End: w.End}
}

// Cert is what renewal timing needs to know about one certificate: its
// validity period and serial number, from the leaf, and the CA's latest ARI
// window, if any.
type Cert struct {
	// NotBefore and NotAfter are the leaf's validity period. A Cert whose
	// NotAfter is not after its NotBefore has no usable lifetime and is due
	// at once.
	NotBefore, NotAfter time.Time

	// Serial is the leaf's serial number (x509.Certificate.SerialNumber).
	// When set, Due takes its random point from a hash of it instead of
	// from rnd, so that the same certificate and window always give the
	// same due time; see Due. nil means draw afresh on each call.
	Serial *big.Int

	// ARI is the window from the CA's renewalInfo resource. The zero
	// Window means the CA does not offer ARI or has not answered yet.
	ARI Window
}

// lifetime returns NotAfter - NotBefore, saturated by time.Time.Sub for
// certificates that "never" expire (NotAfter 9999-12-31).
func (c Cert) lifetime() time.Duration {
	return c.NotAfter.Sub(c.NotBefore)
}

// deadline returns the latest time a renewal is planned for: the safety
// margin, a tenth of the lifetime, before NotAfter.
func (c Cert) deadline() time.Time {
	return c.NotAfter.Add(-c.lifetime() / marginDivisor)
}

// Due returns when c should be renewed, as seen at now. It never returns a
// time before now: a certificate already past its due time is due now.
//
// With a valid ARI window, the window is first clamped to end no later than
// the safety margin (a tenth of the lifetime) before NotAfter, so a CA
// suggesting a window too close to expiry (Pebble's is 2/3 of the lifetime
// ± 24 h whatever the lifetime) cannot leave too little room for retries; a
// window wholly past that point shrinks to that point. A window that opens
// before the lifetime rule's range starts where that range starts, if it
// reaches it (dueRange). The due time is a
// uniform random point of the clamped window, or now if that point has
// passed (RFC 9773 §4.2). A window already over, as a CA gives for a revoked
// certificate, makes the certificate due now.
//
// Without ARI (Let's Encrypt's integration guide), the nominal point is when
// two thirds of the lifetime have passed, or half for lifetimes under 10
// days, and the due time is a uniform random point of that point ± a
// twentieth of the lifetime, or now if it has passed. For a 90-day
// certificate that is days 55.5 to 64.5; for a 60-second one, seconds 27 to
// 33. The latest such point, at 0.717 of the lifetime, is well before the
// safety margin at 0.9.
//
// The random point is the same fraction of the range on every call when
// c.Serial is set: a hash of the serial, uniform over certificates. Due can
// then be computed again at any time (after a restart, at each ARI check, or
// when the scheduled time comes and the window is fetched once more) and
// gives the same instant for the same window, so a certificate found at its
// due time is due now. Without Serial, each call draws afresh from rnd; a
// call at the due time then finds the certificate due only with the
// probability that the range has elapsed, and renewals drift towards the end
// of the range. nil rnd means the math/rand/v2 top-level functions, which
// are safe for concurrent use; a *rand.Rand is not, so callers that pass one
// from several goroutines must guard it.
func Due(c Cert, now time.Time, rnd *rand.Rand) time.Time {
	if c.lifetime() <= 0 {
		return now
	}
	lo, hi := c.dueRange()
	var u float64
	if c.Serial != nil {
		u = serialFraction(c.Serial)
	} else {
		u = float(rnd)
	}
	return later(lo.Add(time.Duration(float64(hi.Sub(lo))*u)), now)
}

// Earliest is the earliest time Due can return for c at now, whatever
// its serial or draw: the start of the range Due draws from, or now. A
// caller that has not read the serial (it costs parsing the leaf) can
// schedule a check there and learn the due time then.
func Earliest(c Cert, now time.Time) time.Time {
	if c.lifetime() <= 0 {
		return now
	}
	lo, _ := c.dueRange()
	return later(lo, now)
}

// Latest is the latest time Due can return for c at now, whatever its
// serial or draw: the end of the range Due draws from, or now. A reader
// that has not read the serial learns by it whether a renewal may still
// be planned ahead (the alerts: a certificate renewed in a CA's late
// window is not expiring while that window is ahead).
func Latest(c Cert, now time.Time) time.Time {
	if c.lifetime() <= 0 {
		return now
	}
	_, hi := c.dueRange()
	return later(hi, now)
}

// dueRange is the range Due draws from: c's ARI window clamped to end by
// the safety margin, else the lifetime rule's.
func (c Cert) dueRange() (lo, hi time.Time) {
	if !c.ARI.Valid() {
		return c.lifetimeRange()
	}
	hi = earlier(c.ARI.End, c.deadline())
	lo = earlier(c.ARI.Start, hi)
	// A window that opens before the lifetime rule's range (Pebble's for
	// a short certificate: its whole life) is drawn from where that range
	// opens, when the window reaches it: still within the window, as RFC
	// 9773 asks, without renewing a certificate just issued (a test saw a
	// 60-second one renewed 7 seconds in). A window wholly before it (a
	// revoked certificate's) is kept as it is.
	if ruleLo, _ := c.lifetimeRange(); lo.Before(ruleLo) && ruleLo.Before(hi) {
		lo = ruleLo
	}
	return lo, hi
}

// lifetimeRange is the range the lifetime rule draws a due time from
// (see Due): two thirds of the lifetime, or half under 10 days, ± a
// twentieth of it, ending no later than the safety margin.
func (c Cert) lifetimeRange() (lo, hi time.Time) {
	life := c.lifetime()
	passed := life - life/3 // two thirds, without overflowing for saturated lifetimes
	if life < shortLifetime {
		passed = life / 2
	}
	mid := c.NotBefore.Add(passed)
	spread := life / spreadDivisor
	return mid.Add(-spread), earlier(mid.Add(spread), c.deadline())
}

// serialFraction maps a serial number to [0, 1) through SHA-256, so that
// even sequential serials (a local CA's 1, 2, 3) spread evenly.
func serialFraction(serial *big.Int) float64 {
	sum := sha256.Sum256(serial.Bytes())
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// NextARICheck returns when the CA's renewalInfo for a certificate should
// next be fetched, given when it was last fetched (lastCheck; the zero time
// means never, and gives a time in the past: check now), the Retry-After the
// CA sent with it (zero if none) and the certificate's current due time
// (zero if unknown).
//
// The rules, in order:
//
//   - With a Retry-After, its time, clamped to [lastCheck+1m,
//     lastCheck+12h]: RFC 9773 §4.3.2 lets clients treat values under a
//     minute as a minute, and Let's Encrypt asks for a check at least twice
//     a day.
//   - Without one, a uniform time in [lastCheck+11h, lastCheck+12h], so
//     that certificates first checked together drift apart.
//   - If due is earlier than that, due, but never before lastCheck+1m: a
//     short-lived certificate is renewed long before 12 hours pass, and the
//     window should be fresh when it is. The Manager can fold a check at the
//     due time into the renewal itself. When due is sooner than a minute
//     after lastCheck, the result is after due: the renewal comes first and
//     the next certificate starts its own checks.
//
// rnd is as for Due.
func NextARICheck(lastCheck, retryAfter, due time.Time, rnd *rand.Rand) time.Time {
	earliest := lastCheck.Add(ariMinInterval)
	latest := lastCheck.Add(ariMaxInterval)
	var next time.Time
	if retryAfter.IsZero() {
		next = latest.Add(-time.Duration(float64(ariJitter) * float(rnd)))
	} else {
		next = later(earlier(retryAfter, latest), earliest)
	}
	if !due.IsZero() && due.Before(next) {
		next = later(due, earliest)
	}
	return next
}

// Early reports whether c's ARI window makes it due at now where the
// lifetime rule would not have begun to: the whole window ends before the
// earliest time the lifetime rule draws from, so the CA asks for it to be
// replaced early (an incident, a revocation ahead). A window of the usual
// kind, around two thirds of the lifetime (Let's Encrypt's) or up to the
// expiry (Pebble's), is not early, wherever in it the due time falls.
func Early(c Cert, now time.Time) bool {
	if !c.ARI.Valid() || c.lifetime() <= 0 || Due(c, now, nil).After(now) {
		return false
	}
	lo, _ := c.lifetimeRange()
	return c.ARI.End.Before(lo)
}

// FirstARICheck returns when the CA's renewalInfo should first be fetched
// for a certificate whose last check is not known (one found in storage
// at start): a uniform time in [now, now+12h]. Checks drawn this way for
// many certificates at once spread over the interval NextARICheck keeps
// between two, where a fixed first check would send them all together.
// rnd is as for Due.
func FirstARICheck(now time.Time, rnd *rand.Rand) time.Time {
	return now.Add(time.Duration(float64(ariMaxInterval) * float(rnd)))
}

// float returns a uniform float64 in [0, 1) from rnd, or from the top-level
// source if rnd is nil.
func float(rnd *rand.Rand) float64 {
	if rnd == nil {
		return rand.Float64()
	}
	return rnd.Float64()
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
