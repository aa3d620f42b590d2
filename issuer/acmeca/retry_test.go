package acmeca

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"5", now.Add(5 * time.Second)},
		{" 0 ", now},
		{"-3", time.Time{}},
		{"soon", time.Time{}},
		{now.Add(time.Hour).Format(http.TimeFormat), now.Add(time.Hour)},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); !got.Equal(tt.want) {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"bad nonce", acme.Problem{Type: acme.ProblemTypeBadNonce, Status: 400}, true},
		{"server internal", fmt.Errorf("wrapped: %w", acme.Problem{Type: acme.ProblemTypeServerInternal, Status: 500}), true},
		{"503 problem", acme.Problem{Type: "about:blank", Status: 503}, true},
		{"rejected identifier", acme.Problem{Type: acme.ProblemTypeRejectedIdentifier, Status: 400}, false},
		{"rate limited", acme.Problem{Type: acme.ProblemTypeRateLimited, Status: 429}, false},
		{"net error", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{"plain 502", errors.New("HTTP 502: bad gateway"), true},
		{"canceled", context.Canceled, false},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), false},
	}
	for _, tt := range tests {
		if got := transient(tt.err); got != tt.want {
			t.Errorf("transient(%s: %v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestDoRetriesTransientThenSucceeds(t *testing.T) {
	iss := &Issuer{}
	calls := 0
	err := iss.do(t.Context(), "step", func(context.Context) error {
		calls++
		if calls < 3 {
			return acme.Problem{Type: acme.ProblemTypeBadNonce}
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("do = %v after %d calls, want nil after 3", err, calls)
	}
}

func TestDoGivesUp(t *testing.T) {
	iss := &Issuer{}
	calls := 0
	start := time.Now()
	err := iss.do(t.Context(), "step", func(context.Context) error {
		calls++
		return errors.New("HTTP 503: down")
	})
	if err == nil || calls != retryAttempts {
		t.Errorf("do = %v after %d calls, want an error after %d", err, calls, retryAttempts)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("gave up after %s, want well under 30s", d)
	}
	calls = 0
	err = iss.do(t.Context(), "step", func(context.Context) error {
		calls++
		return acme.Problem{Type: acme.ProblemTypeUnauthorized}
	})
	if err == nil || calls != 1 {
		t.Errorf("a final problem was tried %d times, want 1", calls)
	}
}

// TestTLSHandshakeTimeoutFinal: a CA that accepts connections and never
// completes a TLS handshake (a process stopped with SIGSTOP) times the
// request out, and that timeout is not retried within the step: each
// retry waited the handshake timeout again (the acme package tries a
// request three times itself), and a trial's renewal said nothing for
// 2m13s.
func TestTLSHandshakeTimeoutFinal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // never accepted: the kernel completes the connection, nothing answers on it
	client := &http.Client{Transport: &http.Transport{TLSHandshakeTimeout: 200 * time.Millisecond}}
	_, err = client.Get("https://" + ln.Addr().String() + "/dir")
	if err == nil {
		t.Fatal("a TLS handshake nobody answers succeeded")
	}
	if transient(err) {
		t.Errorf("transient(%v) = true: a hung CA's timeout would be waited again", err)
	}
	if !isNetworkError(err) {
		t.Errorf("isNetworkError(%v) = false: a hung CA must be ErrUnreachable", err)
	}
}

// TestDoRateLimitBounded: a rateLimited answer with Retry-After 0 (or a
// date past) is waited out at least rateLimitMinWait, at most
// rateLimitWaits times in a step, and then the step fails with the rate
// limit: a trial's CA answering so had certkeeper send 1,200 orders a
// second until its timeout.
func TestDoRateLimitBounded(t *testing.T) {
	iss := &Issuer{}
	calls := 0
	start := time.Now()
	err := iss.do(t.Context(), "new order", func(ctx context.Context) error {
		calls++
		ctx.Value(retryAfterKey{}).(*retryAfter).set(time.Now().Add(-time.Hour)) // Retry-After in the past
		return acme.Problem{Type: acme.ProblemTypeRateLimited}
	})
	took := time.Since(start)
	var rl *rateLimitError
	if !errors.As(err, &rl) || calls != rateLimitWaits+1 {
		t.Errorf("do = %v after %d calls, want the rate limit after %d", err, calls, rateLimitWaits+1)
	}
	if took < rateLimitWaits*rateLimitMinWait {
		t.Errorf("%d calls in %s: the waits were shorter than %s each", calls, took, rateLimitMinWait)
	}
}
