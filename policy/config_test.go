package policy

import (
	"context"
	"errors"
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
