package renewal

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const (
		shortlived = 6 * day
		classic    = 90 * day
	)
	tests := []struct {
		name       string
		life       time.Duration
		now        time.Duration // after NotBefore
		attempt    int
		retryAfter time.Duration // after now; 0 means none
		lo, hi     time.Duration // wait for the lowest and highest draws
	}{
		// 60 s: a quarter of the time left, never under 1 s; lapsed: L/4.
		{"60s first failure at due", time.Minute, 30 * time.Second, 1, 0, 6 * time.Second, 7500 * time.Millisecond},
		{"60s fourth failure", time.Minute, 30 * time.Second, 4, 0, 6 * time.Second, 7500 * time.Millisecond},
		{"60s 20s left", time.Minute, 40 * time.Second, 2, 0, 4 * time.Second, 5 * time.Second},
		{"60s 2s left: floor", time.Minute, 58 * time.Second, 5, 0, 800 * time.Millisecond, time.Second},
		{"60s lapsed", time.Minute, 70 * time.Second, 9, 0, 12 * time.Second, 15 * time.Second},
		{"60s Retry-After wins", time.Minute, 30 * time.Second, 1, 20 * time.Second, 20 * time.Second, 20 * time.Second},
		{"60s Retry-After past expiry obeyed", time.Minute, 30 * time.Second, 1, 5 * time.Minute, 5 * time.Minute, 5 * time.Minute},

		// 6 days: LE's steps until a quarter of what is left is shorter.
		{"6d attempt 1", shortlived, 72 * time.Hour, 1, 0, 48 * time.Second, time.Minute},
		{"6d attempt 2", shortlived, 72 * time.Hour, 2, 0, 8 * time.Minute, 10 * time.Minute},
		{"6d attempt 3", shortlived, 72 * time.Hour, 3, 0, 80 * time.Minute, 100 * time.Minute},
		{"6d attempt 4: left/4", shortlived, 72 * time.Hour, 4, 0, 14*time.Hour + 24*time.Minute, 18 * time.Hour},
		{"6d attempt 20", shortlived, 72 * time.Hour, 20, 0, 14*time.Hour + 24*time.Minute, 18 * time.Hour},
		{"6d 1h left", shortlived, shortlived - time.Hour, 4, 0, 12 * time.Minute, 15 * time.Minute},
		{"6d 2m left: 1m floor", shortlived, shortlived - 2*time.Minute, 4, 0, 48 * time.Second, time.Minute},
		{"6d lapsed", shortlived, shortlived + time.Hour, 7, 0, 80 * time.Minute, 100 * time.Minute},
		{"6d Retry-After shorter than backoff", shortlived, 72 * time.Hour, 2, time.Minute, 8 * time.Minute, 10 * time.Minute},

		// 90 days: LE's schedule, daily until under 4 days are left.
		{"90d attempt 0 as 1", classic, 60 * day, 0, 0, 48 * time.Second, time.Minute},
		{"90d attempt -1 as 1", classic, 60 * day, -1, 0, 48 * time.Second, time.Minute},
		{"90d attempt 1", classic, 60 * day, 1, 0, 48 * time.Second, time.Minute},
		{"90d attempt 2", classic, 60 * day, 2, 0, 8 * time.Minute, 10 * time.Minute},
		{"90d attempt 3", classic, 60 * day, 3, 0, 80 * time.Minute, 100 * time.Minute},
		{"90d attempt 4: daily", classic, 60 * day, 4, 0, 19*time.Hour + 12*time.Minute, 24 * time.Hour},
		{"90d attempt 1000", classic, 60 * day, 1000, 0, 19*time.Hour + 12*time.Minute, 24 * time.Hour},
		{"90d 2d left", classic, 88 * day, 4, 0, 9*time.Hour + 36*time.Minute, 12 * time.Hour},
		{"90d 2m left: 1m floor", classic, classic - 2*time.Minute, 4, 0, 48 * time.Second, time.Minute},
		{"90d lapsed", classic, 91 * day, 4, 0, 80 * time.Minute, 100 * time.Minute},
		{"90d lapsed attempt 1", classic, 91 * day, 1, 0, 48 * time.Second, time.Minute},
		{"90d Retry-After 3h", classic, 60 * day, 1, 3 * time.Hour, 3 * time.Hour, 3 * time.Hour},

		{"no lifetime", 0, 0, 2, 0, 8 * time.Minute, 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cert(tt.life)
			now := t0.Add(tt.now)
			var ra time.Time
			if tt.retryAfter != 0 {
				ra = now.Add(tt.retryAfter)
			}
			if got := Backoff(tt.attempt, c, now, ra, lowest).Sub(now); !nearDur(got, tt.lo) {
				t.Errorf("Backoff(%d, lowest draw) = now+%v, want now+%v", tt.attempt, got, tt.lo)
			}
			if got := Backoff(tt.attempt, c, now, ra, highest).Sub(now); !nearDur(got, tt.hi) {
				t.Errorf("Backoff(%d, highest draw) = now+%v, want now+%v", tt.attempt, got, tt.hi)
			}
		})
	}
}

// TestBackoffBeforeLapse follows a certificate that fails every attempt
// from its due time on, and checks it is tried several times before it
// expires, whatever its lifetime, without retrying more often than the
// floor allows.
func TestBackoffBeforeLapse(t *testing.T) {
	tests := []struct {
		name        string
		life        time.Duration
		min, max    int           // attempts before NotAfter
		minInterval time.Duration // the floor, jittered
	}{
		{"60s", time.Minute, 8, 40, 800 * time.Millisecond},
		{"6d", 6 * day, 12, 60, 48 * time.Second},
		{"6.7d", 160 * time.Hour, 12, 60, 48 * time.Second},
		{"45d", 45 * day, 20, 60, 48 * time.Second},
		{"90d", 90 * day, 30, 80, 48 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(5, 6))
			c := cert(tt.life)
			now := Due(c, t0, rnd)
			attempts := 0
			for attempt := 1; now.Before(c.NotAfter); attempt++ {
				attempts++
				next := Backoff(attempt, c, now, time.Time{}, rnd)
				if gap := next.Sub(now); gap < tt.minInterval {
					t.Fatalf("attempt %d: waits %v, under the floor %v", attempt, gap, tt.minInterval)
				}
				if left := c.NotAfter.Sub(now); next.Sub(now) > max(left/4, tt.minInterval*5/4) {
					t.Fatalf("attempt %d with %v left: waits %v, more than a quarter", attempt, left, next.Sub(now))
				}
				now = next
			}
			t.Logf("%d attempts before expiry", attempts)
			if attempts < tt.min || attempts > tt.max {
				t.Errorf("%d attempts before expiry, want %d to %d", attempts, tt.min, tt.max)
			}
		})
	}
}
