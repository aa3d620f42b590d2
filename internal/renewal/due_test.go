package renewal

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

const day = 24 * time.Hour

// constSource is a rand.Source that always returns the same value, so that
// tests can pin a random draw to either end of its range.
type constSource uint64

func (c constSource) Uint64() uint64 { return uint64(c) }

// lowest makes every Float64 draw 0; highest makes it 1-2⁻⁵³.
var (
	lowest  = rand.New(constSource(0))
	highest = rand.New(constSource(math.MaxUint64))
)

// t0 is an arbitrary NotBefore, off the hour like a real certificate.
var t0 = time.Date(2026, 5, 13, 7, 41, 23, 0, time.UTC)

func cert(life time.Duration) Cert {
	return Cert{NotBefore: t0, NotAfter: t0.Add(life)}
}

func withARI(c Cert, start, end time.Duration) Cert {
	c.ARI = Window{Start: t0.Add(start), End: t0.Add(end)}
	return c
}

// near reports whether got is within a microsecond of want: the highest
// draw lands a nanosecond or so short of the end of its range.
func near(got, want time.Time) bool {
	return nearDur(got.Sub(want), 0)
}

// nearDur reports whether got is within a microsecond of want.
func nearDur(got, want time.Duration) bool {
	d := got - want
	return d > -time.Microsecond && d < time.Microsecond
}

func TestDue(t *testing.T) {
	tests := []struct {
		name string
		c    Cert
		now  time.Duration // after t0
		// lo and hi are the results of the lowest and highest draws,
		// as offsets from t0.
		lo, hi time.Duration
	}{
		// Lifetime rule, half under 10 days, two thirds from 10 days, ± L/20.
		{"60s", cert(time.Minute), 0, 27 * time.Second, 33 * time.Second},
		{"6.7d shortlived", cert(160 * time.Hour), 0, 72 * time.Hour, 88 * time.Hour},
		{"9d", cert(9 * day), 0, 4*day + 12*time.Hour - 9*day/20, 4*day + 12*time.Hour + 9*day/20},
		{"10d", cert(10 * day), 0, 10*day - 10*day/3 - 12*time.Hour, 10*day - 10*day/3 + 12*time.Hour},
		{"45d tlsserver", cert(45 * day), 0, 27*day + 18*time.Hour, 32*day + 6*time.Hour},
		{"90d classic", cert(90 * day), 0, 55*day + 12*time.Hour, 64*day + 12*time.Hour},
		{"398d", cert(398 * day), 0, 398*day - 398*day/3 - 398*day/20, 398*day - 398*day/3 + 398*day/20},
		{"90d now inside range", cert(90 * day), 60 * day, 60 * day, 64*day + 12*time.Hour},
		{"90d past due", cert(90 * day), 70 * day, 70 * day, 70 * day},
		{"90d expired", cert(90 * day), 100 * day, 100 * day, 100 * day},
		{"60s past due", cert(time.Minute), 40 * time.Second, 40 * time.Second, 40 * time.Second},
		{"no lifetime", cert(0), 5 * time.Second, 5 * time.Second, 5 * time.Second},
		{"negative lifetime", cert(-day), 0, 0, 0},

		// ARI: uniform in the window, clamped to end L/10 before expiry.
		{"ARI inside", withARI(cert(90*day), 60*day, 62*day), 0, 60 * day, 62 * day},
		{"ARI earlier than lifetime rule", withARI(cert(90*day), 20*day, 21*day), 0, 20 * day, 21 * day},
		{"ARI ends past margin", withARI(cert(90*day), 80*day, 85*day), 0, 80 * day, 81 * day},
		{"ARI wholly past margin", withARI(cert(90*day), 85*day, 88*day), 0, 81 * day, 81 * day},
		{"ARI past expiry", withARI(cert(90*day), 95*day, 96*day), 0, 81 * day, 81 * day},
		{"ARI over (revoked)", withARI(cert(90*day), -2*day, -day), 30 * day, 30 * day, 30 * day},
		{"ARI straddles now", withARI(cert(90*day), 60*day, 62*day), 61 * day, 61 * day, 62 * day},
		{"ARI 60s", withARI(cert(time.Minute), 40*time.Second, 50*time.Second), 0, 40 * time.Second, 50 * time.Second},
		{"ARI 60s clamped", withARI(cert(time.Minute), 50*time.Second, 70*time.Second), 0, 50 * time.Second, 54 * time.Second},
		{"ARI 6.7d", withARI(cert(160*time.Hour), 100*time.Hour, 110*time.Hour), 0, 100 * time.Hour, 110 * time.Hour},
		{"ARI 45d", withARI(cert(45*day), 29*day, 31*day), 0, 29 * day, 31 * day},
		{"ARI invalid: end before start", withARI(cert(90*day), 62*day, 60*day), 0, 55*day + 12*time.Hour, 64*day + 12*time.Hour},
		{"ARI invalid: empty", withARI(cert(90*day), 60*day, 60*day), 0, 55*day + 12*time.Hour, 64*day + 12*time.Hour},
		{"ARI invalid: no start", Cert{NotBefore: t0, NotAfter: t0.Add(90 * day), ARI: Window{End: t0.Add(70 * day)}}, 0, 55*day + 12*time.Hour, 64*day + 12*time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(tt.now)
			if got, want := Due(tt.c, now, lowest), t0.Add(tt.lo); !near(got, want) {
				t.Errorf("Due(lowest draw) = t0%+v, want t0%+v", got.Sub(t0), want.Sub(t0))
			}
			if got, want := Due(tt.c, now, highest), t0.Add(tt.hi); !near(got, want) {
				t.Errorf("Due(highest draw) = t0%+v, want t0%+v", got.Sub(t0), want.Sub(t0))
			}
		})
	}
}

// TestDueBounds checks the guarantees over random draws, lifetimes from 60 s
// to 398 days and every position of now: never before now, never later
// than the safety margin unless now is, and inside the window or range.
func TestDueBounds(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	lifetimes := []time.Duration{time.Minute, 6 * day, 160 * time.Hour, 10 * day, 45 * day, 64 * day, 90 * day, 398 * day}
	positions := []float64{-0.1, 0, 0.3, 0.5, 0.6, 0.7, 0.85, 0.95, 1.2}
	for _, life := range lifetimes {
		for _, ari := range []bool{false, true} {
			c := cert(life)
			if ari {
				c.ARI = Window{Start: t0.Add(life / 2), End: t0.Add(life * 3 / 4)}
			}
			deadline := c.NotAfter.Add(-life / 10)
			for _, pos := range positions {
				now := t0.Add(time.Duration(pos * float64(life)))
				for range 200 {
					due := Due(c, now, rnd)
					if due.Before(now) {
						t.Fatalf("life %v ari %v now %.2f: Due = t0%+v, before now", life, ari, pos, due.Sub(t0))
					}
					if due.After(later(now, deadline)) {
						t.Fatalf("life %v ari %v now %.2f: Due = t0%+v, after the safety margin t0%+v", life, ari, pos, due.Sub(t0), deadline.Sub(t0))
					}
					lo, hi := c.ARI.Start, c.ARI.End
					if !ari {
						frac := 2.0 / 3
						if life < 10*day {
							frac = 0.5
						}
						lo = t0.Add(time.Duration((frac - 0.05) * float64(life)))
						hi = t0.Add(time.Duration((frac + 0.05) * float64(life)))
					}
					if !due.Equal(now) && (due.Before(lo.Add(-time.Microsecond)) || due.After(hi.Add(time.Microsecond))) {
						t.Fatalf("life %v ari %v now %.2f: Due = t0%+v, outside [t0%+v, t0%+v]", life, ari, pos, due.Sub(t0), lo.Sub(t0), hi.Sub(t0))
					}
				}
			}
		}
	}
}

// TestEarliestLatest: Earliest and Latest bound every time Due draws,
// with or without a window, and are reached: the lowest and highest
// draws give them (before now has passed them).
func TestEarliestLatest(t *testing.T) {
	for _, life := range []time.Duration{time.Minute, 6 * day, 90 * day} {
		for _, ari := range []bool{false, true} {
			c := cert(life)
			if ari {
				c.ARI = Window{Start: t0.Add(life / 2), End: c.NotAfter} // past the margin: clamped
			}
			now := t0
			lo, hi := Earliest(c, now), Latest(c, now)
			if got := Due(c, now, lowest); !got.Equal(lo) {
				t.Errorf("life %v ari %v: lowest draw %v, Earliest %v", life, ari, got.Sub(t0), lo.Sub(t0))
			}
			if got := Due(c, now, highest); hi.Sub(got) > time.Microsecond || got.After(hi) {
				t.Errorf("life %v ari %v: highest draw %v, Latest %v", life, ari, got.Sub(t0), hi.Sub(t0))
			}
			if deadline := c.NotAfter.Add(-life / 10); hi.After(deadline) {
				t.Errorf("life %v ari %v: Latest %v past the safety margin %v", life, ari, hi.Sub(t0), deadline.Sub(t0))
			}
			if late := c.NotAfter.Add(time.Hour); !Latest(c, late).Equal(late) {
				t.Errorf("life %v ari %v: Latest after the expiry is not now", life, ari)
			}
		}
	}
}

// TestEarlyWindowNarrowed: a window that opens at issuance (Pebble's for
// a 60-second certificate) is drawn from where the lifetime rule's range
// opens, never sooner; one wholly before it (a revoked certificate's) is
// kept, and the certificate is due at once.
func TestEarlyWindowNarrowed(t *testing.T) {
	c := cert(time.Minute)
	c.ARI = Window{Start: c.NotBefore, End: c.NotAfter}
	ruleLo, _ := c.lifetimeRange()
	if got := Due(c, t0, lowest); !got.Equal(ruleLo) {
		t.Errorf("lowest draw in a whole-life window at t0%+v, want where the lifetime rule opens, t0%+v", got.Sub(t0), ruleLo.Sub(t0))
	}
	c.ARI = Window{Start: t0.Add(-time.Hour), End: t0.Add(-time.Hour + time.Second)}
	if got := Due(c, t0.Add(time.Second), highest); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("a window in the past: due t0%+v, want now", got.Sub(t0))
	}
}

// TestDueSpread checks that draws cover the range rather than cluster.
func TestDueSpread(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	c := cert(90 * day)
	var sum time.Duration
	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	const n = 10000
	for range n {
		d := Due(c, t0, rnd).Sub(t0)
		sum += d / n
		lo, hi = min(lo, d), max(hi, d)
	}
	if mean := sum; mean < 59*day+18*time.Hour || mean > 60*day+6*time.Hour {
		t.Errorf("mean due = %v, want about 60 days", mean)
	}
	if lo > 56*day || hi < 64*day {
		t.Errorf("due range = [%v, %v], want about [55.5d, 64.5d]", lo, hi)
	}
}

// TestDueSerialStable checks that with a serial number Due gives the same
// time on every call, whatever rnd, and that a call at that time finds the
// certificate due.
func TestDueSerialStable(t *testing.T) {
	lifetimes := []time.Duration{time.Minute, 160 * time.Hour, 45 * day, 90 * day}
	serials := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), new(big.Int).Lsh(big.NewInt(0x5eed), 100)}
	for _, life := range lifetimes {
		for _, serial := range serials {
			for _, ari := range []bool{false, true} {
				c := cert(life)
				c.Serial = serial
				if ari {
					c.ARI = Window{Start: t0.Add(life / 2), End: t0.Add(life * 3 / 4)}
				}
				due := Due(c, t0, nil)
				if other := Due(c, t0, lowest); !other.Equal(due) {
					t.Errorf("life %v serial %v ari %v: Due = t0%+v, then t0%+v with another rnd", life, serial, ari, due.Sub(t0), other.Sub(t0))
				}
				if again := Due(c, due.Add(-time.Nanosecond), nil); !again.Equal(due) {
					t.Errorf("life %v serial %v ari %v: Due just before the due time = t0%+v, want t0%+v", life, serial, ari, again.Sub(t0), due.Sub(t0))
				}
				if again := Due(c, due, nil); !again.Equal(due) {
					t.Errorf("life %v serial %v ari %v: Due at the due time = t0%+v, want t0%+v (due now)", life, serial, ari, again.Sub(t0), due.Sub(t0))
				}
			}
		}
	}
}

// TestDueSerialSpread checks that sequential serials, as a local CA issues,
// spread evenly over the range.
func TestDueSerialSpread(t *testing.T) {
	const n = 10000
	c := cert(90 * day)
	var buckets [10]int
	for i := range n {
		c.Serial = big.NewInt(int64(i + 1))
		f := float64(Due(c, t0, nil).Sub(t0)-(55*day+12*time.Hour)) / float64(9*day)
		if f < 0 || f >= 1 {
			t.Fatalf("serial %d: due at %.3f of the range, want in [0, 1)", i+1, f)
		}
		buckets[int(f*10)]++
	}
	for i, b := range buckets {
		if b < n/10*8/10 || b > n/10*12/10 {
			t.Errorf("serials in tenth %d of the range: %d, want about %d (all: %v)", i, b, n/10, buckets)
		}
	}
}

// TestDueRecomputeAtDue follows a Manager that computes Due, waits for it,
// fetches the (unchanged) ARI window and computes Due again: with a serial
// the second computation renews; without one it takes a few rounds.
func TestDueRecomputeAtDue(t *testing.T) {
	for _, life := range []time.Duration{time.Minute, 160 * time.Hour, 90 * day} {
		rnd := rand.New(rand.NewPCG(11, 12))
		for _, serial := range []*big.Int{big.NewInt(12345), nil} {
			rounds, worst := 0, 0
			for range 1000 {
				c := withARI(cert(life), life/2, life*3/4)
				c.Serial = serial
				now := t0
				for rounds = 1; ; rounds++ {
					due := Due(c, now, rnd)
					if !due.After(now) {
						break
					}
					now = due
				}
				worst = max(worst, rounds)
			}
			t.Logf("life %v serial %v: at most %d computations", life, serial, worst)
			if serial != nil && worst != 2 {
				t.Errorf("life %v with serial: renewed after %d computations, want 2", life, worst)
			}
			if serial == nil && worst > 15 {
				t.Errorf("life %v without serial: renewed after up to %d computations, want a few", life, worst)
			}
		}
	}
}

func TestDueNilRand(t *testing.T) {
	c := cert(time.Minute)
	for range 100 {
		if d := Due(c, t0, nil).Sub(t0); d < 27*time.Second || d >= 33*time.Second {
			t.Fatalf("Due(60s, nil rand) = t0+%v, want in [27s, 33s)", d)
		}
	}
}

// TestDueForever checks a certificate that "never" expires (RFC 5280
// §4.1.2.5: 99991231235959Z) gives a sane time, not an overflow.
func TestDueForever(t *testing.T) {
	c := Cert{NotBefore: t0, NotAfter: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)}
	for _, rnd := range []*rand.Rand{lowest, highest} {
		due := Due(c, t0, rnd)
		if !due.After(t0.Add(100*365*day)) || !due.Before(c.NotAfter) {
			t.Errorf("Due(NotAfter 9999) = %v, want far in the future and before NotAfter", due)
		}
	}
}

func TestNextARICheck(t *testing.T) {
	last := t0.Add(3 * day)
	at := func(d time.Duration) time.Time { return last.Add(d) }
	tests := []struct {
		name       string
		retryAfter time.Time
		due        time.Time
		lo, hi     time.Duration // lowest and highest draws, after last
	}{
		{"default", time.Time{}, time.Time{}, 12 * time.Hour, 11 * time.Hour},
		{"due far", time.Time{}, at(30 * day), 12 * time.Hour, 11 * time.Hour},
		{"Retry-After 6h (Pebble)", at(6 * time.Hour), time.Time{}, 6 * time.Hour, 6 * time.Hour},
		{"Retry-After 10s clamped up", at(10 * time.Second), time.Time{}, time.Minute, time.Minute},
		{"Retry-After in the past clamped up", at(-time.Hour), time.Time{}, time.Minute, time.Minute},
		{"Retry-After 48h clamped down", at(48 * time.Hour), time.Time{}, 12 * time.Hour, 12 * time.Hour},
		{"due before default", time.Time{}, at(30 * time.Minute), 30 * time.Minute, 30 * time.Minute},
		{"due before Retry-After", at(6 * time.Hour), at(time.Hour), time.Hour, time.Hour},
		{"due after Retry-After", at(6 * time.Hour), at(7 * time.Hour), 6 * time.Hour, 6 * time.Hour},
		{"due within a minute (60s cert)", time.Time{}, at(20 * time.Second), time.Minute, time.Minute},
		{"due in the past", time.Time{}, at(-time.Hour), time.Minute, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextARICheck(last, tt.retryAfter, tt.due, lowest).Sub(last); !nearDur(got, tt.lo) {
				t.Errorf("NextARICheck(lowest draw) = last+%v, want last+%v", got, tt.lo)
			}
			if got := NextARICheck(last, tt.retryAfter, tt.due, highest).Sub(last); !nearDur(got, tt.hi) {
				t.Errorf("NextARICheck(highest draw) = last+%v, want last+%v", got, tt.hi)
			}
		})
	}
}

func TestNextARICheckNever(t *testing.T) {
	if got := NextARICheck(time.Time{}, time.Time{}, time.Time{}, nil); !got.Before(t0) {
		t.Errorf("NextARICheck(never checked) = %v, want a time in the past", got)
	}
}

// TestFirstARICheck: first checks fall in [now, now+12h] and spread over
// it (each of its twelve hours gets some of 1,200 draws).
func TestFirstARICheck(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	var hours [12]int
	for range 1200 {
		got := FirstARICheck(t0, rnd)
		if got.Before(t0) || !got.Before(t0.Add(12*time.Hour)) {
			t.Fatalf("FirstARICheck = %v, want in [%v, %v)", got, t0, t0.Add(12*time.Hour))
		}
		hours[got.Sub(t0)/time.Hour]++
	}
	for h, n := range hours {
		if n < 50 {
			t.Errorf("hour %d got %d of 1200 first checks, want about 100", h, n)
		}
	}
}

// TestEarly: a window of the usual kind is not early, wherever in it a
// certificate's due time falls against the lifetime rule's (a trial saw
// "the CA asks for this certificate to be replaced early" on half of the
// ordinary renewals); a window the CA moved wholly before the lifetime
// rule's range is.
func TestEarly(t *testing.T) {
	nb := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for serial := int64(1); serial <= 200; serial++ {
		usual := Cert{NotBefore: nb, NotAfter: nb.Add(90 * day), Serial: big.NewInt(serial),
			ARI: Window{Start: nb.Add(59 * day), End: nb.Add(61 * day)}}
		if now := nb.Add(61*day + time.Minute); Early(usual, now) {
			t.Fatalf("serial %d: a window at days 59 to 61 of 90 is early", serial)
		}
		// Pebble's: from issuance to expiry, for a short certificate.
		short := Cert{NotBefore: nb, NotAfter: nb.Add(8 * time.Minute), Serial: big.NewInt(serial),
			ARI: Window{Start: nb, End: nb.Add(8 * time.Minute)}}
		if now := Due(short, nb, nil); Early(short, now) {
			t.Fatalf("serial %d: a window over the whole lifetime is early", serial)
		}
		incident := usual
		incident.ARI = Window{Start: nb.Add(9 * day), End: nb.Add(10 * day)}
		if now := nb.Add(10 * day); !Early(incident, now) {
			t.Fatalf("serial %d: a window moved to day 9 to 10 of 90 is not early", serial)
		}
		if now := nb.Add(8 * day); Early(incident, now) {
			t.Fatalf("serial %d: early before the window opens", serial)
		}
	}
}
