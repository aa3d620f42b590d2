package policy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestConfigPolicy(t *testing.T) {
	if p, err := (Config{}).Policy(); p != nil || err != nil {
		t.Errorf("zero Config: %v, %v; want nil, nil", p, err)
	}
	p, err := Config{Allow: []string{"*.a.example"}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Decide(ctx, "x.a.example"); err != nil {
		t.Errorf("allowed name refused: %v", err)
	}
	if err := p.Decide(ctx, "b.example"); !errors.Is(err, ErrDenied) {
		t.Errorf("other name: %v, want ErrDenied", err)
	}
	if _, ok := p.(*RequireOwnIP); ok {
		t.Error("allowlist alone built a RequireOwnIP")
	}
	p, err = Config{RequireOwnIP: true, OwnIPPrivate: true}.Policy()
	if r, ok := p.(*RequireOwnIP); err != nil || !ok || !r.AllowPrivate {
		t.Errorf("RequireOwnIP with OwnIPPrivate = %#v, %v", p, err)
	}
	// Several checks: the allowlist refuses before the ask URL is asked.
	p, err = Config{Allow: []string{"a.example"}, Ask: "http://127.0.0.1:1/never"}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Decide(ctx, "b.example"); !errors.Is(err, ErrDenied) {
		t.Errorf("All: %v, want ErrDenied", err)
	}
	if _, err := (Config{OwnIPPrivate: true}).Policy(); !errors.Is(err, ErrPrivateWithoutOwnIP) {
		t.Errorf("OwnIPPrivate alone: %v, want ErrPrivateWithoutOwnIP", err)
	}
	if _, err := (Config{Allow: []string{"re:("}, OwnIPPrivate: true}).Policy(); err == nil || errors.Is(err, ErrPrivateWithoutOwnIP) {
		t.Errorf("bad pattern: %v, want the allowlist's error first", err)
	}
}

// TestConfigPolicyAskURL: an Ask URL that can never be asked is refused
// by Config.Policy (and AskURL.Check), not turned into a policy that
// refuses every name at the first handshake.
func TestConfigPolicyAskURL(t *testing.T) {
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:9000/allowed", true},
		{"https://ask.test/check?token=T", true},
		{"ftp://ask.test/check", false},
		{"127.0.0.1:9000/allowed", false},
		{"/allowed", false},
		{"http://ask.test/check?domain=a.test", false},
	} {
		_, err := Config{Ask: tt.url}.Policy()
		checkErr := (&AskURL{URL: tt.url}).Check()
		if tt.ok != (err == nil) || tt.ok != (checkErr == nil) {
			t.Errorf("Config{Ask: %q}.Policy() = %v, Check() = %v; want ok %v", tt.url, err, checkErr, tt.ok)
		}
		if !tt.ok && (!errors.Is(err, ErrInvalidAskURL) || !errors.Is(checkErr, ErrInvalidAskURL)) {
			t.Errorf("Config{Ask: %q}.Policy() = %v, want an error matching ErrInvalidAskURL", tt.url, err)
		}
	}
}

// TestConfigPolicyRouted: Routed patterns are allowed whatever the other
// checks say (an ask URL that refuses every name is not asked for them),
// alone they are the whole policy, and a name neither routed nor allowed
// is refused by the other checks, with their refusal.
func TestConfigPolicyRouted(t *testing.T) {
	ctx := context.Background()
	asked := 0
	never := httptestRefuser(t, &asked)
	p, err := Config{Allow: []string{"a.example"}, Ask: never, Routed: []string{"r.example", "*.w.example"}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"r.example", "x.w.example"} {
		if err := p.Decide(ctx, name); err != nil {
			t.Errorf("routed %s refused: %v", name, err)
		}
	}
	if asked != 0 {
		t.Errorf("the ask URL was asked %d times for routed names", asked)
	}
	if err := p.Decide(ctx, "a.example"); !errors.Is(err, ErrDenied) || asked != 1 {
		t.Errorf("an allowed name the ask URL refuses: %v (asked %d); want ErrDenied after asking", err, asked)
	}
	if err := p.Decide(ctx, "b.example"); !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "b.example is not on the allowlist") {
		t.Errorf("a name neither routed nor allowed: %v; want the allowlist's refusal", err)
	}
	p, err = Config{Routed: []string{"r.example"}}.Policy()
	if err != nil || p == nil {
		t.Fatalf("routes alone: %v, %v; want a policy", p, err)
	}
	if p.Decide(ctx, "r.example") != nil || !errors.Is(p.Decide(ctx, "b.example"), ErrDenied) {
		t.Error("routes alone: want the routed name allowed and another refused")
	}
	if _, err := (Config{Routed: []string{"re:("}}).Policy(); err == nil {
		t.Error("a bad routed pattern was accepted")
	}
}

// httptestRefuser is an ask URL that refuses every name, counting the
// questions in *asked.
func httptestRefuser(t *testing.T, asked *int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*asked++
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
