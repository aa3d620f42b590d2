package policy

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"
)

// allowN calls Allow n times and returns how many were allowed.
func allowN(l *IPLimiter, ip netip.Addr, n int) int {
	allowed := 0
	for range n {
		if l.Allow(ip) {
			allowed++
		}
	}
	return allowed
}

func TestIPLimiterDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l IPLimiter
		a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		if got := allowN(&l, a, 20); got != 10 {
			t.Errorf("%d of 20 issuances at once allowed for %v, want the burst of 10", got, a)
		}
		if got := allowN(&l, b, 20); got != 10 {
			t.Errorf("%d of 20 allowed for %v after %v spent its budget, want 10", got, b, a)
		}
		time.Sleep(3*time.Minute - time.Second)
		if l.Allow(a) {
			t.Errorf("Allow(%v) before 3 minutes = true, want false", a)
		}
		time.Sleep(time.Second)
		if !l.Allow(a) {
			t.Errorf("Allow(%v) after 3 minutes = false, want true", a)
		}
		// Over 3 hours one client gets at most the burst and 60 more.
		time.Sleep(3 * time.Hour)
		total := 0
		for range 180 {
			total += allowN(&l, b, 10)
			time.Sleep(time.Minute)
		}
		if total > 70 {
			t.Errorf("one client started %d issuances in 3 hours, want at most 70", total)
		}
	})
}

func TestIPLimiterClients(t *testing.T) {
	tests := []struct {
		name   string
		a, b   string
		shared bool
	}{
		{"IPv4 addresses", "192.0.2.1", "192.0.2.2", false},
		{"IPv6 same /64", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", true},
		{"IPv6 other /64", "2001:db8::1", "2001:db8:0:1::1", false},
		{"IPv4-mapped", "::ffff:192.0.2.1", "192.0.2.1", true},
		{"zones", "fe80::1%eth0", "fe80::2%eth1", true},
		{"IPv4 and IPv6", "0.0.0.1", "::1", false},
		{"not IP", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				parse := func(s string) netip.Addr {
					if s == "" {
						return netip.Addr{}
					}
					return netip.MustParseAddr(s)
				}
				a, b := parse(tt.a), parse(tt.b)
				l := &IPLimiter{Burst: 1}
				if !l.Allow(a) {
					t.Fatalf("Allow(%v) = false, want true", a)
				}
				if got := l.Allow(b); got == tt.shared {
					t.Errorf("Allow(%v) after Allow(%v) = %v, want shared bucket %v", b, a, got, tt.shared)
				}
			})
		})
	}
}

func TestIPLimiterFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ip := netip.MustParseAddr("192.0.2.1")
		l := &IPLimiter{Rate: rate.Every(time.Second), Burst: 3}
		if got := allowN(l, ip, 10); got != 3 {
			t.Errorf("%d of 10 allowed, want Burst 3", got)
		}
		time.Sleep(time.Second)
		if got := allowN(l, ip, 10); got != 1 {
			t.Errorf("%d of 10 allowed a second later, want 1", got)
		}

		inf := &IPLimiter{Rate: rate.Inf}
		if got := allowN(inf, ip, 1000); got != 1000 {
			t.Errorf("rate.Inf: %d of 1000 allowed, want all", got)
		}
	})
}

func TestIPLimiterBounded(t *testing.T) {
	l := &IPLimiter{MaxClients: 100, Burst: 1}
	base := netip.MustParseAddr("2001:db8::").As16()
	for i := range 10_000 {
		b := base
		b[6], b[7] = byte(i>>8), byte(i) // a different /64 each time
		l.Allow(netip.AddrFrom16(b))
	}
	l.mu.Lock()
	n := l.clients.len()
	l.mu.Unlock()
	if n != 100 {
		t.Errorf("%d clients remembered after 10,000 distinct ones, want MaxClients (100)", n)
	}
}

// TestIPLimiterEvictsLeastRecent checks that a client seen recently
// survives a flood of others that a client seen long ago does not.
func TestIPLimiterEvictsLeastRecent(t *testing.T) {
	l := &IPLimiter{MaxClients: 3, Burst: 1}
	old, recent := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	l.Allow(old)
	l.Allow(recent)
	l.Allow(netip.MustParseAddr("192.0.2.3"))
	// Refused, but seen: recent is now the most recently used.
	l.Allow(recent)
	// A fourth client evicts old, the least recently used.
	l.Allow(netip.MustParseAddr("192.0.2.4"))
	if !l.Allow(old) {
		t.Errorf("Allow(%v) after eviction = false, want a fresh bucket", old)
	}
	if l.Allow(recent) {
		t.Errorf("Allow(%v) = true, want its spent bucket kept", recent)
	}
}

func TestIPLimiterConcurrent(t *testing.T) {
	var l IPLimiter
	ip := netip.MustParseAddr("192.0.2.1")
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if l.Allow(ip) {
				allowed.Add(1)
			}
			l.Allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
		})
	}
	wg.Wait()
	// The test takes far less than 3 minutes: no refill.
	if got := allowed.Load(); got != 10 {
		t.Errorf("%d of 100 concurrent issuances allowed, want the burst of 10", got)
	}
}

// TestIPLimiterNext: Next says when a client whose budget is spent may
// start an issuance again (Allow then lets it), and now for one with
// budget left or a new one.
func TestIPLimiterNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ip := netip.MustParseAddr("192.0.2.1")
		l := &IPLimiter{Rate: rate.Every(time.Minute), Burst: 2}
		if next := l.Next(ip); !next.Equal(time.Now()) {
			t.Errorf("a new client: Next in %s, want now", time.Until(next))
		}
		allowN(l, ip, 2)
		time.Sleep(15 * time.Second)
		next := l.Next(ip)
		if d := time.Until(next); d != 45*time.Second {
			t.Errorf("spent 15 s ago at one a minute: Next in %s, want 45s", d)
		}
		time.Sleep(time.Until(next))
		if !l.Allow(ip) {
			t.Error("Allow at Next refused")
		}
	})
}
