package limit

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/certkeeper/certkeeper/issuer"
	"golang.org/x/time/rate"
)

// takeN calls Take n times and fails the test at the first error.
func takeN(t *testing.T, l *CALimiter, n int) {
	t.Helper()
	for i := range n {
		if err := l.Take(); err != nil {
			t.Fatalf("Take() number %d of %d = %v, want nil", i+1, n, err)
		}
	}
}

// wantLimited checks that Take is refused with a retry time between
// after and after+slack from now.
func wantLimited(t *testing.T, l *CALimiter, after time.Duration) *RateLimitError {
	t.Helper()
	err := l.Take()
	var rl *RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, issuer.ErrRateLimited) {
		t.Fatalf("Take() = %v, want a *RateLimitError matching issuer.ErrRateLimited", err)
	}
	if d := time.Until(rl.RetryAt); d < after || d > after+time.Millisecond {
		t.Fatalf("Take() = %v: retry in %v, want %v", err, d, after)
	}
	return rl
}

// TestCALimiterLetsEncrypt checks the zero value against Let's Encrypt's
// published limit: 300 orders at once, then one per 36 s.
func TestCALimiterLetsEncrypt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l CALimiter
		takeN(t, &l, 300)
		rl := wantLimited(t, &l, 36*time.Second)
		time.Sleep(time.Until(rl.RetryAt))
		takeN(t, &l, 1)
		wantLimited(t, &l, 36*time.Second)
		time.Sleep(3 * time.Hour)
		takeN(t, &l, 300)
		wantLimited(t, &l, 36*time.Second)
	})
}

func TestCALimiterFields(t *testing.T) {
	tests := []struct {
		name  string
		l     *CALimiter
		burst int
		every time.Duration // 0: no limit
	}{
		{"rate and burst", &CALimiter{Rate: rate.Every(time.Second), Burst: 2}, 2, time.Second},
		{"burst only", &CALimiter{Burst: 5}, 5, 36 * time.Second},
		{"rate only", &CALimiter{Rate: rate.Every(time.Minute)}, 300, time.Minute},
		{"no limit", &CALimiter{Rate: rate.Inf}, 10_000, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				takeN(t, tt.l, tt.burst)
				if tt.every == 0 {
					return
				}
				wantLimited(t, tt.l, tt.every)
			})
		})
	}
}

func TestCALimiterNeverRefills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &CALimiter{Rate: rate.Limit(-1), Burst: 1}
		takeN(t, l, 1)
		rl := wantLimited(t, l, forever)
		if rl.Error() == "" {
			t.Errorf("Error() is empty")
		}
	})
}

func TestCALimiterWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &CALimiter{Burst: 1}
		takeN(t, l, 1)

		start := time.Now()
		if err := l.Wait(t.Context()); err != nil {
			t.Fatalf("Wait() = %v, want nil", err)
		}
		if d := time.Since(start); d < 36*time.Second || d > 36*time.Second+time.Millisecond {
			t.Errorf("Wait() took %v, want 36s", d)
		}

		// A deadline before the next order: refused at once.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start = time.Now()
		err := l.Wait(ctx)
		if !errors.Is(err, issuer.ErrRateLimited) || time.Since(start) != 0 {
			t.Errorf("Wait(10s deadline) = %v after %v, want issuer.ErrRateLimited at once", err, time.Since(start))
		}

		// Canceled while waiting.
		ctx, cancel = context.WithCancel(t.Context())
		go func() {
			time.Sleep(5 * time.Second)
			cancel()
		}()
		err = l.Wait(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, issuer.ErrRateLimited) {
			t.Errorf("Wait(canceled) = %v, want context.Canceled", err)
		}
		// The canceled wait spent nothing: the order is there at 36 s.
		time.Sleep(time.Until(start.Add(36 * time.Second)))
		takeN(t, l, 1)
	})
}

func TestCALimiterPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l CALimiter
		takeN(t, &l, 1)
		l.Pause(time.Now().Add(time.Hour))
		l.Pause(time.Now().Add(time.Minute)) // does not shorten the pause
		wantLimited(t, &l, time.Hour)

		start := time.Now()
		if err := l.Wait(t.Context()); err != nil {
			t.Fatalf("Wait() = %v, want nil", err)
		}
		if d := time.Since(start); d != time.Hour {
			t.Errorf("Wait() during a pause took %v, want 1h", d)
		}
		// The hour refilled what was spent before it; Wait spent one.
		takeN(t, &l, 299)
		wantLimited(t, &l, 36*time.Second)
	})
}

// TestCALimiterWaitSeesPause checks that a Pause that comes during a
// wait holds the waiter back too.
func TestCALimiterWaitSeesPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &CALimiter{Burst: 1}
		takeN(t, l, 1)
		start := time.Now()
		go func() {
			time.Sleep(10 * time.Second)
			l.Pause(start.Add(time.Hour))
		}()
		if err := l.Wait(t.Context()); err != nil {
			t.Fatalf("Wait() = %v, want nil", err)
		}
		if d := time.Since(start); d != time.Hour {
			t.Errorf("Wait() took %v, want the pause's 1h", d)
		}
	})
}

func TestCALimiterState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l CALimiter
		takeN(t, &l, 100)
		l.Pause(time.Now().Add(time.Minute))
		b, err := json.Marshal(l.State())
		if err != nil {
			t.Fatalf("json.Marshal(State()) = %v", err)
		}
		time.Sleep(360 * time.Second) // 10 orders refilled; the pause is over

		var s CALimiterState
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("json.Unmarshal(%s) = %v", b, err)
		}
		var restored CALimiter
		restored.Restore(s)
		takeN(t, &restored, 210)
		wantLimited(t, &restored, 36*time.Second)

		// A state with more left than there is changes nothing.
		fresh := CALimiterState{Tokens: 300, At: time.Now()}
		restored.Restore(fresh)
		wantLimited(t, &restored, 36*time.Second)

		// A pause in force is restored.
		var paused CALimiter
		paused.Restore(CALimiterState{Tokens: 300, At: time.Now(), PausedUntil: time.Now().Add(time.Hour)})
		wantLimited(t, &paused, time.Hour)

		// The zero state changes nothing.
		var zero CALimiter
		zero.Restore(CALimiterState{})
		takeN(t, &zero, 300)
	})
}

func TestRateLimitError(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 0, time.FixedZone("x", 3600))
	tests := []struct {
		err  *RateLimitError
		want string
	}{
		{&RateLimitError{Limit: "new orders per CA account", RetryAt: at},
			"rate limited: new orders per CA account: retry at 2026-01-02T14:04:05Z"},
		{&RateLimitError{Limit: "failed authorizations", Name: "a.test", RetryAt: at},
			"rate limited: failed authorizations for a.test: retry at 2026-01-02T14:04:05Z"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.err, issuer.ErrRateLimited) {
			t.Errorf("errors.Is(%v, issuer.ErrRateLimited) = false, want true", tt.err)
		}
	}
}

// TestPauseBounded: a pause, given or restored, lasts MaxPause at most: a
// trial's CA asked for 32 years with one rate-limit answer, and every new
// order waited until 2058, on every node sharing the stored state.
func TestPauseBounded(t *testing.T) {
	far := time.Now().Add(32 * 365 * 24 * time.Hour)
	for name, l := range map[string]*CALimiter{"paused": {}, "restored": {}} {
		if name == "paused" {
			l.Pause(far)
		} else {
			l.Restore(CALimiterState{PausedUntil: far})
		}
		got := l.State().PausedUntil
		if got.After(time.Now().Add(MaxPause)) || got.Before(time.Now().Add(MaxPause-time.Minute)) {
			t.Errorf("%s until %s: paused until %s, want about %s from now", name, far.Format(time.RFC3339), got.Format(time.RFC3339), MaxPause)
		}
	}
}
