package testca

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

func TestFaultProxy(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	p := NewFaultProxy(t, ca)
	ctx := t.Context()

	// Through the proxy, the directory points at the proxy.
	dir := fetchDirectory(t, ca.HTTPClient(), p.DirectoryURL())
	origin := "https://" + p.Addr() + "/"
	for name, u := range map[string]string{"newNonce": dir.NewNonce, "newAccount": dir.NewAccount, "newOrder": dir.NewOrder} {
		if !strings.HasPrefix(u, origin) {
			t.Errorf("directory %s through the proxy = %q, want it under %s", name, u, origin)
		}
	}

	// An ACME client works through it: JWS URLs match what Pebble expects.
	client := &acme.Client{Directory: p.DirectoryURL(), HTTPClient: ca.HTTPClient()}
	acct, err := client.NewAccount(ctx, acme.Account{PrivateKey: newKey(t), TermsOfServiceAgreed: true})
	if err != nil {
		t.Fatalf("NewAccount through the proxy: %v", err)
	}
	if !strings.HasPrefix(acct.Location, origin) {
		t.Errorf("account URL = %q, want it under %s", acct.Location, origin)
	}
	order := acme.Order{Identifiers: []acme.Identifier{{Type: "dns", Value: "limited.example"}}, Profile: "default"}

	t.Run("RateLimit", func(t *testing.T) {
		p.RateLimit("new-order", 1, 2500*time.Millisecond)
		_, err := client.NewOrder(ctx, acct, order)
		var prob acme.Problem
		if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:rateLimited" || prob.Status != http.StatusTooManyRequests {
			t.Fatalf("NewOrder under RateLimit = %v, want 429 rateLimited", err)
		}
		// The fault used up, the next order reaches Pebble, and the nonce
		// the 429 carried was good.
		if _, err := client.NewOrder(ctx, acct, order); err != nil {
			t.Fatalf("NewOrder after the rate limit: %v", err)
		}
		ca.WaitFor(t, "one order", func() bool { return ca.Orders() == 1 })
		if got := p.Count("newOrder"); got != 2 {
			t.Errorf("Count(newOrder) = %d, want 2", got)
		}

		// On the wire: status, headers, problem document.
		p.RateLimit("", 1, 2500*time.Millisecond)
		resp := do(t, http.MethodPost, dir.NewOrder, ca.HTTPClient())
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "3" ||
			resp.Header.Get("Content-Type") != "application/problem+json" || resp.Header.Get("Replay-Nonce") == "" {
			t.Errorf("rate-limited answer: %s, Retry-After %q, Content-Type %q, Replay-Nonce %q; want 429, 3, application/problem+json, a nonce",
				resp.Status, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"), resp.Header.Get("Replay-Nonce"))
		}
		var doc struct{ Type, Detail string }
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Type != "urn:ietf:params:acme:error:rateLimited" || doc.Detail == "" {
			t.Errorf("problem document = %+v, %v; want type rateLimited and a detail", doc, err)
		}
	})

	t.Run("ServiceUnavailable", func(t *testing.T) {
		p.ServiceUnavailable("/dir", 1, time.Second)
		if resp := do(t, http.MethodGet, p.DirectoryURL(), ca.HTTPClient()); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("GET directory = %s, Retry-After %q; want 503, 1", resp.Status, resp.Header.Get("Retry-After"))
		}
		if resp := do(t, http.MethodGet, p.DirectoryURL(), ca.HTTPClient()); resp.StatusCode != http.StatusOK {
			t.Errorf("GET directory after the fault = %s, want 200", resp.Status)
		}
	})

	t.Run("Pause", func(t *testing.T) {
		p.Pause()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := get(short, ca.HTTPClient(), p.DirectoryURL()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GET while paused = %v, want context.DeadlineExceeded", err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := get(ctx, ca.HTTPClient(), p.DirectoryURL())
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("GET while paused returned early: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		p.Resume()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("paused GET after Resume: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("paused GET still hangs 10s after Resume")
		}
	})

	t.Run("PauseAt", func(t *testing.T) {
		p.PauseAt("new-order")
		defer p.Resume()
		// Other endpoints pass.
		if _, err := get(ctx, ca.HTTPClient(), p.DirectoryURL()); err != nil {
			t.Errorf("GET directory while new-order is paused: %v", err)
		}
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := client.NewOrder(short, acct, order); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("NewOrder while new-order is paused = %v, want context.DeadlineExceeded", err)
		}
		p.Resume()
		if _, err := client.NewOrder(ctx, acct, order); err != nil {
			t.Errorf("NewOrder after Resume: %v", err)
		}
	})

	t.Run("Down", func(t *testing.T) {
		p.Down()
		p.Down()
		if _, err := get(ctx, ca.HTTPClient(), p.DirectoryURL()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("GET while down = %v, want connection refused", err)
		}
		p.Up(t)
		if _, err := get(ctx, ca.HTTPClient(), p.DirectoryURL()); err != nil {
			t.Errorf("GET after Up: %v", err)
		}
	})

	t.Run("Drop", func(t *testing.T) {
		// A fresh connection: the transport retries a GET dropped on a
		// reused one.
		fresh := &http.Client{Transport: newTransport(ca.RootPool())}
		fresh.Transport.(*http.Transport).DisableKeepAlives = true
		p.Drop(1)
		if _, err := get(ctx, fresh, p.DirectoryURL()); err == nil {
			t.Error("GET with Drop(1) succeeded")
		}
		if _, err := get(ctx, fresh, p.DirectoryURL()); err != nil {
			t.Errorf("GET after the drop: %v", err)
		}
	})

	t.Run("Delay", func(t *testing.T) {
		p.Delay(150 * time.Millisecond)
		start := time.Now()
		if _, err := get(ctx, ca.HTTPClient(), p.DirectoryURL()); err != nil {
			t.Fatalf("GET with Delay: %v", err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("GET with Delay(150ms) took %v", d)
		}
		p.Delay(0)
	})

	if p.Requests() < 10 || p.Count("") != p.Requests() {
		t.Errorf("Requests() = %d, Count(nil) = %d; want the same, at least 10", p.Requests(), p.Count(""))
	}
}

// do sends a request with an empty body and returns the response, its body
// left to read (and closed at the end of the test).
func do(t *testing.T, method, url string, client *http.Client) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "certkeeper-testca-test")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	return resp
}

// TestFaultProxyStoppedCA: with Pebble stopped behind it, the proxy
// answers 502, and after Restart it forwards again.
func TestFaultProxyStoppedCA(t *testing.T) {
	t.Parallel()
	ca := Start(t, Options{})
	p := NewFaultProxy(t, ca)
	ca.Stop()
	if resp := do(t, http.MethodGet, p.DirectoryURL(), ca.HTTPClient()); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("GET through the proxy to a stopped CA = %s, want 502", resp.Status)
	}
	ca.Restart(t)
	if resp := do(t, http.MethodGet, p.DirectoryURL(), ca.HTTPClient()); resp.StatusCode != http.StatusOK {
		t.Errorf("GET through the proxy after Restart = %s, want 200", resp.Status)
	}
}

func TestEndpointMatcher(t *testing.T) {
	tests := []struct {
		endpoint, path string
		want           bool
	}{
		{"new-order", "/order-plz", true},
		{"newOrder", "/order-plz", true},
		{"new-order", "/my-order/abc", false},
		{"order", "/my-order/abc", true},
		{"finalize", "/finalize-order/abc", true},
		{"renewal-info", "/draft-ietf-acme-ari-03/renewalInfo/abc.def", true},
		{"/chalZ/", "/chalZ/xyz", true},
		{"/chalZ/", "/authZ/xyz", false},
		{"", "/anything", true},
	}
	for _, tt := range tests {
		if got := endpointMatcher(tt.endpoint)(tt.path); got != tt.want {
			t.Errorf("endpointMatcher(%q)(%q) = %t, want %t", tt.endpoint, tt.path, got, tt.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("endpointMatcher(\"new-oder\") did not panic")
		}
	}()
	endpointMatcher("new-oder")
}
